import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { startServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { broadcast, httpRequest, sleep } from '../helpers/http.js';
import { waitUntil } from '../helpers/wait.js';
import { deriveKey } from '../../src/auth/keys.js';
import { freePort } from '../helpers/tcp-proxy.js';
import { signToken } from '../helpers/tokens.js';
import { ioredisArgs } from '../../src/broker/redis-endpoint.js';
import { loadConfig, printableConfig } from '../../src/config/load.js';

/** Our own redis-server (TLS or sentinel), so these tests touch nobody's Redis. */
async function redisServer(args: readonly string[]): Promise<ChildProcess> {
  const child = spawn('redis-server', [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  const deadline = Date.now() + 5000;
  while (!/Ready to accept connections|Sentinel ID is/.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`redis-server did not start: ${out}`);
    await sleep(20);
  }
  return child;
}

/** A subscriber on stream `s`, then a PUBLISH on the legacy channel once cablecat listens there; the frame must arrive. */
async function roundTrip(server: TestServer, publisher: Redis, channel: string): Promise<void> {
  const token = await signToken(TEST_SECRET, { ext: '{"user_id":"r"}' }, { expiresIn: 60 });
  const client = await RawClient.connect(`${server.url}?jid=${token}`);
  assert.equal(((await client.next()) as { type: string }).type, 'welcome');
  const id = identifier('$pubsub', { stream_name: 's' });
  client.subscribe(id);
  assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
  await waitUntil(async () => ((await publisher.pubsub('NUMSUB', channel)) as [string, number])[1] === 1, 'cablecat subscribed to the channel', 8000);
  await publisher.publish(channel, JSON.stringify({ stream: 's', data: '"over redis"' }));
  assert.deepEqual(await client.next(), { identifier: id, message: 'over redis' });
  await client.close();
}

describe('Redis TLS (rediss://) with verification, a CA and a client certificate', () => {
  let dir: string;
  let redis: ChildProcess;
  let port: number;
  let clientTls: RedisOptions['tls'];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cablecat-redis-tls-'));
    const ssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' }); };
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test-ca');
    for (const name of ['server', 'client']) {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name === 'server' ? 'localhost' : 'cablecat'}`);
      writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
    }
    port = await freePort();
    redis = await redisServer(['--port', '0', '--tls-port', String(port), '--tls-cert-file', join(dir, 'server.pem'), '--tls-key-file', join(dir, 'server-key.pem'),
      '--tls-ca-cert-file', join(dir, 'ca.pem'), '--tls-auth-clients', 'yes', '--save', '', '--appendonly', 'no']);
    clientTls = { ca: readFileSync(join(dir, 'ca.pem')), cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client-key.pem')) };
  });
  after(() => {
    redis.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  /** roundTrip() with a publisher that has the client certificate; stops `server` either way. */
  async function roundTripThenStop(server: TestServer, channel: string): Promise<void> {
    const publisher = new Redis(`rediss://127.0.0.1:${port}`, { tls: clientTls });
    try {
      await roundTrip(server, publisher, channel);
    } finally {
      publisher.disconnect();
      await server.stop();
    }
  }

  test('mTLS with --redis_tls_ca_cert_path and the client certificate: broadcasts arrive', async () => {
    const channel = `tls-${Math.random().toString(36).slice(2)}`;
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broadcast_adapter', 'redis', '--redis_channel', channel,
      '--redis_url', `rediss://127.0.0.1:${port}`, '--redis_tls_ca_cert_path', join(dir, 'ca.pem'),
      '--redis_tls_client_cert_path', join(dir, 'client.pem'), '--redis_tls_client_key_path', join(dir, 'client-key.pem')]);
    await roundTripThenStop(server, channel);
  });

  test('without the CA the certificate is refused (verification is on by default); --redis_tls_verify=false accepts it', async () => {
    const channel = `tls-${Math.random().toString(36).slice(2)}`;
    const client = ['--redis_tls_client_cert_path', join(dir, 'client.pem'), '--redis_tls_client_key_path', join(dir, 'client-key.pem')];
    const refused = await startServer(['--secret', TEST_SECRET, '--norpc', '--broadcast_adapter', 'redis', '--redis_channel', channel,
      '--redis_url', `rediss://127.0.0.1:${port}`, ...client]);
    try {
      await waitUntil(async () => refused.logs.text.includes('redis error'), 'the TLS error is in the log', 8000);
      assert.match(refused.logs.text, /certificate/);
    } finally {
      await refused.stop();
    }
    const accepted = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broadcast_adapter', 'redis', '--redis_channel', channel,
      '--redis_url', `rediss://127.0.0.1:${port}`, '--redis_tls_verify=false', ...client]);
    await roundTripThenStop(accepted, channel);
  });

  test('a TLS file that cannot be read is a config error naming the flag and the file', async () => {
    await assert.rejects(startServer(['--secret', TEST_SECRET, '--norpc', '--broadcast_adapter', 'redis', '--redis_url', `rediss://127.0.0.1:${port}`,
      '--redis_tls_ca_cert_path', '/nonexistent/ca.pem']), /--redis_tls_ca_cert_path: cannot read "\/nonexistent\/ca.pem" \(ENOENT\)/);
  });
});

describe('Redis Sentinel', () => {
  let dir: string;
  let master: ChildProcess;
  let sentinel: ChildProcess;
  let masterPort: number;
  let sentinelPort: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cablecat-sentinel-'));
    masterPort = await freePort();
    master = await redisServer(['--port', String(masterPort), '--save', '', '--appendonly', 'no']);
    sentinelPort = await freePort();
    // Sentinel rewrites its config file, so it gets its own.
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(conf, `port ${sentinelPort}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 ${masterPort} 1\n`);
    sentinel = await redisServer([conf, '--sentinel']);
  });
  after(() => {
    sentinel.kill();
    master.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  test('--redis_sentinels with --redis_url naming the master: cablecat finds the master and receives broadcasts', async () => {
    const channel = `sentinel-${Math.random().toString(36).slice(2)}`;
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broadcast_adapter', 'redis', '--redis_channel', channel,
      '--redis_url', 'redis://mymaster', '--redis_sentinels', `127.0.0.1:${sentinelPort}`]);
    const publisher = new Redis({ port: masterPort, host: '127.0.0.1' });
    try {
      await roundTrip(server, publisher, channel);
    } finally {
      publisher.disconnect();
      await server.stop();
    }
  });

  test('--broker redis goes through the sentinels too: history is kept on the master (/health is 200, keys appear there)', async () => {
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', 'redis',
      '--redis_url', 'redis://mymaster', '--redis_sentinels', `127.0.0.1:${sentinelPort}`]);
    const master = new Redis({ port: masterPort, host: '127.0.0.1' });
    try {
      let health = await httpRequest(`${server.http}/health`);
      for (let i = 0; i < 100 && health.status !== 200; i++) {
        await sleep(50);
        health = await httpRequest(`${server.http}/health`);
      }
      assert.equal(health.status, 200, 'the broker reached Redis through the sentinel');
      const before = await master.dbsize();
      const answer = await broadcast(server.http, { stream: `sentinel-history-${Math.random().toString(36).slice(2)}`, data: '"kept"' }, deriveKey(TEST_SECRET, 'broadcast-cable'));
      assert.equal(answer.status, 201);
      let after = await master.dbsize();
      for (let i = 0; i < 100 && after <= before; i++) {
        await sleep(20);
        after = await master.dbsize();
      }
      assert.ok(after > before, 'the stream history was written on the master');
    } finally {
      master.disconnect();
      await server.stop();
    }
  });
});

test('sentinel options: master name, db and passwords map onto ioredis; --print-config masks sentinel passwords', () => {
  const args = ioredisArgs({ url: 'redis://:pw@mymaster/2', sentinels: [':spw@10.0.0.1:26380', '10.0.0.2'], tls: { verify: true } });
  assert.equal(args.url, null);
  assert.deepEqual(args.options, {
    name: 'mymaster', sentinels: [{ host: '10.0.0.1', port: 26380 }, { host: '10.0.0.2', port: 26379 }], password: 'pw', sentinelPassword: 'spw', db: 2,
  });
  assert.equal(ioredisArgs({ url: 'redis://mymaster', sentinels: [':spw@h:1'], tls: { verify: true } }).options.password, 'spw', 'anycable-go: a sentinel entry password serves the master too');
  assert.deepEqual(ioredisArgs({ url: 'rediss://h:1', sentinels: [], tls: { verify: false } }).options, { tls: { rejectUnauthorized: false } });
  const printed = printableConfig(loadConfig(['--redis_sentinels', ':secretpw@h:26379,h2:26379'], {}).flagValues);
  assert.deepEqual(printed.redis_sentinels, ['******@h:26379', 'h2:26379']);
});
