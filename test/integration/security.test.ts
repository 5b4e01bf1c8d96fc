import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, withServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { RawClient } from '../helpers/ws-client.js';
import { broadcast, httpRequest, sleep } from '../helpers/http.js';
import { signToken } from '../helpers/tokens.js';
import { deriveKey } from '../../src/auth/keys.js';
import { hashPassword } from '../../src/auth/users.js';

const API_KEY = deriveKey(TEST_SECRET, 'api-cable');
const WS_KEY = 'ws-key-for-machines-0123456789';

function postJson(url: string, body: unknown, key?: string): ReturnType<typeof httpRequest> {
  return httpRequest(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) }, body: JSON.stringify(body) });
}

describe('HTTP API key, WebSocket key, minted tokens', () => {
  let server: TestServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cablecat-'));
    writeFileSync(join(dir, 'users'), `# users\nalice:${await hashPassword('wonderland')}\n`);
    server = await startServer(['--secret', TEST_SECRET, '--norpc', '--ws_api_key', WS_KEY, '--path', '/cable,/machines/{id}',
      '--users_file', join(dir, 'users'), '--metrics_http', '/metrics', '--max_conn', '50']);
  });
  after(() => server.stop());

  test('POST /auth/token with the API key mints a token the WebSocket endpoint accepts', async () => {
    const answer = await postJson(`${server.http}/auth/token`, { identifiers: { user_id: 'bob' }, ttl: 120 }, API_KEY);
    assert.equal(answer.status, 200);
    const body = answer.json() as { access_token: string; token_type: string; expires_in: number };
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 120);
    const client = await RawClient.connect(`${server.url}?jid=${body.access_token}`);
    assert.equal(((await client.next()) as { type: string }).type, 'welcome');
    await client.close();
  });

  test('the token endpoint, metrics and broadcasts refuse a missing or wrong key with 401 and no hint', async () => {
    for (const key of [undefined, 'wrong', deriveKey('other', 'api-cable')]) {
      const token = await postJson(`${server.http}/auth/token`, { identifiers: { a: 1 } }, key);
      assert.equal(token.status, 401);
      assert.deepEqual(token.json(), { error: 'invalid_credentials' });
      const metrics = await httpRequest(`${server.http}/metrics`, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
      assert.equal(metrics.status, 401);
      assert.deepEqual(metrics.json(), { error: 'invalid_credentials' });
    }
    const keyInQuery = await httpRequest(`${server.http}/metrics?token=${API_KEY}`);
    assert.equal(keyInQuery.status, 401, 'the key in the wrong place is refused');
    assert.equal((await httpRequest(`${server.http}/metrics`, { headers: { Authorization: `Bearer ${API_KEY}` } })).status, 200);
    assert.equal((await httpRequest(`${server.http}/health`)).status, 200, '/health needs no key');
  });

  test('internal users: right password gets a token for {"user_id":<name>}; wrong ones 401', async () => {
    const ok = await postJson(`${server.http}/auth/token`, { username: 'alice', password: 'wonderland' });
    assert.equal(ok.status, 200);
    const client = await RawClient.connect(`${server.url}?jid=${(ok.json() as { access_token: string }).access_token}`);
    assert.equal(((await client.next()) as { type: string }).type, 'welcome');
    await client.close();
    for (const creds of [{ username: 'alice', password: 'nope' }, { username: 'mallory', password: 'wonderland' }]) {
      const answer = await postJson(`${server.http}/auth/token`, creds);
      assert.equal(answer.status, 401);
      assert.deepEqual(answer.json(), { error: 'invalid_credentials' });
    }
  });

  test('WebSocket key: no credential or a wrong key gets 403; the key in ?token= is accepted as {"user_id":<path id>}', async () => {
    for (const url of [server.url, `${server.url}?token=wrong`, `${server.url}?key=${WS_KEY}`]) {
      const client = new RawClient(url);
      await assert.rejects(client.opened);
      assert.equal(client.unexpectedStatus, 403);
    }
    const machine = await RawClient.connect(`ws://127.0.0.1:${server.port}/machines/sensor-9?token=${WS_KEY}`);
    assert.equal(((await machine.next()) as { type: string }).type, 'welcome');
    // Its identifiers are {"user_id":"sensor-9"}: a remote disconnect by those identifiers reaches it.
    const kick = await postJson(`${server.http}/_broadcast`, { command: 'disconnect', payload: { identifier: '{"user_id":"sensor-9"}', reconnect: false } }, API_KEY);
    assert.equal(kick.status, 201);
    assert.deepEqual(await machine.next(), { type: 'disconnect', reason: 'remote', reconnect: false });
    const generic = await RawClient.connect(`${server.url}?token=${WS_KEY}`);
    assert.equal(((await generic.next()) as { type: string }).type, 'welcome');
    await generic.close();
  });

  test('with the WebSocket key set, an expired JWT still reaches the client as token_expired', async () => {
    const expired = await signToken(TEST_SECRET, { ext: '{"a":1}' }, { expiresIn: -5 });
    const client = await RawClient.connect(`${server.url}?jid=${expired}`);
    assert.equal(await client.nextText(), '{"type":"disconnect","reason":"token_expired","reconnect":false}');
  });

  test('token in both header and query: the header wins', async () => {
    const good = await signToken(TEST_SECRET, { ext: '{"a":1}' }, { expiresIn: 60 });
    const bad = await signToken('wrong-secret-000000000000', { ext: '{"a":1}' }, { expiresIn: 60 });
    const headerGood = await RawClient.connect(`${server.url}?jid=${bad}`, { headers: { 'X-JID': good } });
    assert.equal(((await headerGood.next()) as { type: string }).type, 'welcome');
    await headerGood.close();
    const headerBad = await RawClient.connect(`${server.url}?jid=${good}`, { headers: { 'X-JID': bad } });
    assert.equal(((await headerBad.next()) as { reason: string }).reason, 'unauthorized');
  });

  test('logs never contain keys, tokens or cookies', async () => {
    const token = await signToken(TEST_SECRET, { ext: '{"a":1}' }, { expiresIn: 60 });
    const client = await RawClient.connect(`${server.url}?jid=${token}`, { headers: { Cookie: 'session=topsecretcookie' } });
    await client.next();
    await client.close();
    await sleep(50);
    for (const secret of [TEST_SECRET, API_KEY, WS_KEY, token, 'topsecretcookie', 'wonderland']) {
      assert.ok(!server.logs.text.includes(secret), 'a secret leaked into the logs');
    }
  });
});

describe('secret rotation, origins, connection limit, TLS', () => {
  test('tokens signed with any of several JWT secrets verify', async () => {
    await withServer(['--jwt_secret', 'new-secret-0123456789abc,old-secret-0123456789abc', '--norpc', '--broadcast_key', 'none'], async (server) => {
      for (const secret of ['new-secret-0123456789abc', 'old-secret-0123456789abc']) {
        const client = await RawClient.connect(`${server.url}?jid=${await signToken(secret, { ext: '{"a":1}' }, { expiresIn: 60 })}`);
        assert.equal(((await client.next()) as { type: string }).type, 'welcome');
        await client.close();
      }
    });
  });

  test('--allowed_origins: other origins get 403; listed and wildcard ones connect', async () => {
    await withServer(['--noauth', '--norpc', '--allowed_origins', 'app.example.com,*.example.io'], async (server) => {
      for (const origin of ['https://app.example.com', 'https://chat.example.io']) {
        const client = await RawClient.connect(server.url, { headers: { Origin: origin } });
        await client.next();
        await client.close();
      }
      const evil = new RawClient(server.url, { headers: { Origin: 'https://evil.com' } });
      await assert.rejects(evil.opened);
      assert.equal(evil.unexpectedStatus, 403);
    });
  });

  test('--max_conn: over the limit, upgrades get 503 at once', async () => {
    await withServer(['--noauth', '--norpc', '--max_conn', '2'], async (server) => {
      const a = await RawClient.connect(server.url);
      const b = await RawClient.connect(server.url);
      const c = new RawClient(server.url);
      await assert.rejects(c.opened);
      assert.equal(c.unexpectedStatus, 503);
      await a.close();
      await b.close();
    });
  });

  test('TLS with --ssl_cert/--ssl_key serves wss://', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cablecat-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
    await withServer(['--noauth', '--norpc', '--ssl_cert', join(dir, 'cert.pem'), '--ssl_key', join(dir, 'key.pem')], async (server) => {
      const { default: WebSocket } = await import('ws');
      const ws = new WebSocket(`wss://127.0.0.1:${server.port}/cable`, ['actioncable-v1-json'], { rejectUnauthorized: false });
      const first = await new Promise<string>((resolve, reject) => { ws.once('message', (d) => resolve(d.toString())); ws.once('error', reject); });
      assert.equal((JSON.parse(first) as { type: string }).type, 'welcome');
      ws.close();
    });
  });
});

describe('the CLI', () => {
  const cli = join(process.cwd(), 'dist/src/cli/main.js');
  const run = (args: string[], env: NodeJS.ProcessEnv): { code: number; out: string; err: string } => {
    try {
      const out = execFileSync(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return { code: 0, out, err: '' };
    } catch (e) {
      const err = e as { status: number; stdout: string; stderr: string };
      return { code: err.status, out: err.stdout, err: err.stderr };
    }
  };

  test('in production without a secret it refuses to start and names the env vars', () => {
    const r = run(['--port', '0'], { NODE_ENV: 'production' });
    assert.equal(r.code, 2);
    assert.match(r.err, /ANYCABLE_SECRET/);
  });

  test('in production a weak secret is refused', () => {
    const r = run(['--port', '0'], { NODE_ENV: 'production', ANYCABLE_SECRET: 'changeme' });
    assert.equal(r.code, 2);
    assert.match(r.err, /weak/);
  });

  test('bad config exits 2 with one message listing every problem', () => {
    const r = run(['--port', 'abc', '--ping_interval', '-1', '--log_format', 'xml', '--bogus'], {});
    assert.equal(r.code, 2);
    for (const part of ['--port', '--ping_interval', '--log_format', '--bogus']) assert.ok(r.err.includes(part), part);
  });

  test('--help lists options with env names; --print-config masks secrets; env < flags', () => {
    const help = run(['--help'], {});
    assert.match(help.out, /--jwt_param .*ANYCABLE_JWT_PARAM/);
    const printed = run(['--print-config', '--port', '9001'], { ANYCABLE_SECRET: 'a-very-long-secret-value', ANYCABLE_PORT: '9000' });
    const config = JSON.parse(printed.out) as Record<string, unknown>;
    assert.equal(config.port, 9001);
    assert.equal(config.secret, '******');
    assert.ok(!printed.out.includes('a-very-long-secret-value'));
  });

  test('in development without a secret it starts with a warning and prints a working token', async () => {
    const child = spawn(process.execPath, [cli, '--port', '0', '--http_broadcast_port', '0', '--host', '127.0.0.1', '--norpc', '--log_format', 'json'], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      for (let i = 0; i < 300 && !(out.includes('cablecat started') && /Client token .*\n/.test(out)); i++) await sleep(100);
      assert.match(out, /NO SECRET SET/);
      assert.match(out, /Client token \(identifiers/);
      const started = out.split('\n').find((l) => l.includes('cablecat started'));
      assert.ok(started);
      const line = JSON.parse(started) as { address: string; auth: string[]; broadcast: string[]; rpc: string; version: string };
      assert.deepEqual(line.auth, ['jwt']);
      assert.equal(line.rpc, 'disabled');
      const token = /Client token \(identifiers \{"user_id":"test"\}, valid 24 h\): (\S+)/.exec(out)?.[1] ?? '';
      const client = await RawClient.connect(`${line.address.replace('http', 'ws')}/cable?jid=${token}`);
      assert.equal(((await client.next()) as { type: string }).type, 'welcome');
      child.kill('SIGTERM');
      assert.equal(await client.nextText(), '{"type":"disconnect","reason":"server_restart","reconnect":true}');
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      assert.equal(code, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('hash-password prints a hash usable in --users_file', () => {
    const out = execFileSync(process.execPath, [cli, 'hash-password'], { input: 'pw\n', encoding: 'utf8' });
    assert.match(out.trim(), /^scrypt\$16384\$8\$1\$/);
  });
});

describe('issue 11: a token opens the WebSocket key gate only where a verifier checks it', () => {
  test('JWT off (--noauth --ws_api_key): ?jid=, X-JID and anycable-token.* get 403; the key gets a welcome', async () => {
    await withServer(['--noauth', '--norpc', '--ws_api_key', WS_KEY], async (server) => {
      const attempts: Array<[string, ConstructorParameters<typeof RawClient>[1]]> = [
        [`${server.url}?jid=whatever`, {}],
        [server.url, { headers: { 'X-JID': 'whatever' } }],
        [server.url, { protocols: ['actioncable-v1-json', 'anycable-token.whatever'] }],
      ];
      for (const [url, opts] of attempts) {
        const client = new RawClient(url, opts);
        await assert.rejects(client.opened);
        assert.equal(client.unexpectedStatus, 403);
      }
      const machine = await RawClient.connect(`${server.url}?token=${WS_KEY}`);
      assert.equal(((await machine.next()) as { type: string }).type, 'welcome');
      await machine.close();
    });
  });

  test('JWT off, SSE (--sse): ?jid= and X-JID get 401 like no credential; the key is let in', async () => {
    await withServer(['--noauth', '--norpc', '--ws_api_key', WS_KEY, '--sse', '--public_streams'], async (server) => {
      for (const [query, headers] of [['?jid=whatever', {}], ['', { 'X-JID': 'whatever' }]] as const) {
        const answer = await httpRequest(`${server.http}/events${query}${query ? '&' : '?'}stream=sse-key-test`, { headers });
        assert.equal(answer.status, 401);
        assert.deepEqual(answer.json(), { error: 'unauthorized' });
      }
      const { request } = await import('node:http');
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(`${server.http}/events?token=${WS_KEY}&stream=sse-key-test`, { agent: false }, (res) => { resolve(res.statusCode ?? 0); res.destroy(); });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 200);
    });
  });

  test('JWT on (--noauth --ws_api_key --secret): a forged token ends in unauthorized, never a welcome', async () => {
    await withServer(['--noauth', '--norpc', '--ws_api_key', WS_KEY, '--secret', TEST_SECRET], async (server) => {
      const forged = await signToken('some-other-secret-0123456789', { ext: '{"user_id":"eve"}' }, { expiresIn: 60 });
      for (const [url, opts] of [[`${server.url}?jid=${forged}`, {}], [server.url, { headers: { 'X-JID': 'not-a-jwt' } }]] as const) {
        const client = await RawClient.connect(url, opts);
        assert.equal(await client.nextText(), '{"type":"disconnect","reason":"unauthorized","reconnect":false}');
        assert.equal((await client.closed).code, 1000);
      }
    });
  });
});

/** Runs the built CLI to its end (or kills it after `timeoutMs`: a server that should have failed but started). */
function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 8000): { code: number | null; out: string } {
  const cli = join(process.cwd(), 'dist/src/cli/main.js');
  try {
    const out = execFileSync(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    return { code: 0, out };
  } catch (e) {
    const err = e as { status: number | null; stdout: string; stderr: string };
    return { code: err.status, out: `${err.stdout}${err.stderr}` };
  }
}

describe('issue 11: fail loudly on a taken port, a missing TLS file, a bad users file', () => {
  test('a second server on a taken port does not start: the error names the port, exit 1', async () => {
    await withServer(['--noauth', '--norpc'], async (first) => {
      await assert.rejects(startServer(['--noauth', '--norpc', '--port', String(first.port)]), new RegExp(`port ${first.port} is in use`));
      const r = runCli(['--port', String(first.port), '--host', '127.0.0.1', '--noauth', '--norpc', '--log_format', 'json']);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, new RegExp(`port ${first.port} is in use`));
      // The first server still answers alone.
      const client = await RawClient.connect(first.url);
      assert.equal(((await client.next()) as { type: string }).type, 'welcome');
      await client.close();
    });
  });

  test('a missing or broken TLS file is a config error naming the file (exit 2), not "App construction failed"', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cablecat-tls-'));
    writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
    const missing = runCli(['--port', '0', '--noauth', '--norpc', '--ssl_cert', join(dir, 'nope.pem'), '--ssl_key', join(dir, 'garbage.pem')]);
    assert.equal(missing.code, 2, missing.out);
    assert.ok(missing.out.includes(`--ssl_cert: cannot read ${join(dir, 'nope.pem')} (ENOENT)`), missing.out);
    assert.ok(missing.out.includes(`--ssl_key: ${join(dir, 'garbage.pem')} is not a PEM private key`), missing.out);
    assert.ok(!missing.out.includes('App construction failed'));
  });

  test('a --users_file problem prints the normal config-error format, no literal \\n', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cablecat-users-'));
    writeFileSync(join(dir, 'users'), 'alice-without-hash\n');
    for (const [path, problem] of [[join(dir, 'missing'), `--users_file: cannot read ${join(dir, 'missing')} (ENOENT)`], [join(dir, 'users'), '--users_file: line 1 is not username:scrypt-hash']] as const) {
      const r = runCli(['--port', '0', '--secret', TEST_SECRET, '--norpc', '--users_file', path]);
      assert.equal(r.code, 2, r.out);
      assert.equal(r.out, `cablecat: invalid configuration:\n  - ${problem}\n`);
    }
  });
});

/** A port nothing listens on (bound and released at once). */
async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Waits for a log line matching `pattern` (fails after `timeoutMs`). */
async function logLine(server: TestServer, pattern: RegExp, timeoutMs = 3000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = server.logs.lines.find((l) => pattern.test(l));
    if (line !== undefined) return line;
    if (Date.now() > deadline) throw new Error(`no log line matching ${pattern} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

describe('issue 11: URL credentials are masked; an unreachable NATS is reported at once', () => {
  test('--print-config masks passwords inside --nats_servers, --redis_url and an HTTP --rpc_host', () => {
    const r = runCli(['--print-config', '--nats_servers', 'nats://bob:natspass1@n1:4222,nats://natstoken2@n2:4222',
      '--redis_url', 'redis://:redispass3@r:6379/0', '--rpc_host', 'https://app:rpcpass4@app.example.com/anycable']);
    assert.equal(r.code, 0, r.out);
    for (const secret of ['natspass1', 'natstoken2', 'redispass3', 'rpcpass4']) assert.ok(!r.out.includes(secret), `${secret} printed`);
    const config = JSON.parse(r.out) as Record<string, string>;
    assert.equal(config.nats_servers, 'nats://******@n1:4222,nats://******@n2:4222');
    assert.equal(config.redis_url, '******', 'redis_url is a secret flag: masked whole');
    assert.equal(config.rpc_host, 'https://******@app.example.com/anycable');
  });

  test('an unreachable NATS is warned about at once, with its URL masked; clients keep working', async () => {
    const port = await closedPort();
    await withServer(['--noauth', '--norpc', '--broadcast_adapter', 'nats', '--nats_servers', `nats://bob:natspass5@127.0.0.1:${port}`], async (server) => {
      const line = await logLine(server, /nats unreachable/);
      const record = JSON.parse(line) as { level: number; servers: string[] };
      assert.equal(record.level, 40);
      assert.deepEqual(record.servers, [`nats://******@127.0.0.1:${port}`]);
      assert.ok(!server.logs.text.includes('natspass5'));
      const client = await RawClient.connect(server.url);
      assert.equal(((await client.next()) as { type: string }).type, 'welcome');
      await client.close();
    });
  });

  test('URL credentials in any log message or field and in config errors are masked', async () => {
    const { LogCapture } = await import('../helpers/server.js');
    const { createLogger } = await import('../../src/logging/logger.js');
    const { ConfigError } = await import('../../src/errors.js');
    const capture = new LogCapture();
    const logger = createLogger({ level: 'info', format: 'json', destination: capture });
    logger.warn({ url: 'redis://:pw6@h:6379', servers: ['nats://u:pw7@h'], err: new Error('dial rediss://u:pw8@h failed') }, 'cannot reach amqp://u:pw9@h?password=pw10');
    assert.deepEqual(capture.records()[0], {
      level: 40, time: capture.records()[0]?.time, url: 'redis://******@h:6379', servers: ['nats://******@h'],
      err: 'dial rediss://******@h failed', msg: 'cannot reach amqp://******@h?password=******',
    });
    assert.equal(new ConfigError(['--redis_url: "redis://:pw11@h" is odd']).message, 'invalid configuration:\n  - --redis_url: "redis://******@h" is odd');
  });
});

describe('issue 11: the password path is cheap to refuse and throttled as attempts arrive', () => {
  const login = (server: TestServer, password: string): ReturnType<typeof httpRequest> => postJson(`${server.http}/auth/token`, { username: 'alice', password });

  test('without --users_file the password path does not exist: 422 at once, with or without the API key', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc'], async (server) => {
      const answers = await Promise.all(Array.from({ length: 64 }, (_, i) => postJson(`${server.http}/auth/token`, { username: 'alice', password: `guess-${i}` }, i % 2 === 0 ? API_KEY : undefined)));
      for (const answer of answers) {
        assert.equal(answer.status, 422);
        assert.deepEqual(answer.json(), { error: 'invalid_payload', detail: 'password login is off (no --users_file): send identifiers with the API key' });
      }
    });
  });

  test('with --users_file a parallel burst is counted as it arrives: a few 401s, the rest 429 with Retry-After', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cablecat-users-'));
    writeFileSync(join(dir, 'users'), `alice:${await hashPassword('wonderland')}\n`);
    await withServer(['--secret', TEST_SECRET, '--norpc', '--users_file', join(dir, 'users')], async (server) => {
      const answers = await Promise.all(Array.from({ length: 64 }, (_, i) => login(server, `guess-${i}`)));
      const byStatus = new Map<number, number>();
      for (const a of answers) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
      const refused = byStatus.get(401) ?? 0;
      const throttled = answers.filter((a) => a.status === 429);
      assert.equal(refused + throttled.length, 64, JSON.stringify([...byStatus]));
      assert.ok(refused >= 5 && refused <= 7, `${refused} attempts reached scrypt (burst 5, one more per 2 s)`);
      for (const a of throttled) {
        const retryAfter = Number(a.headers['retry-after']);
        assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${String(a.headers['retry-after'])}`);
        assert.deepEqual(a.json(), { error: 'too_many_requests', retry_after: retryAfter });
      }
      // Even the right password waits its turn: the throttle counts attempts, not failures.
      assert.equal((await login(server, 'wonderland')).status, 429);
      assert.equal(server.app.metrics.counters.token_requests_refused_total, 65, 'every refusal is counted');
    });
  });

  test('the throttle forgets the least recently seen address first, never more than its bound', async () => {
    const { AttemptThrottle } = await import('../../src/auth/login-guard.js');
    let now = 0;
    const throttle = new AttemptThrottle({ burst: 2, refillMs: 1000, maxAddresses: 3 }, () => now);
    assert.deepEqual([throttle.take('a'), throttle.take('a'), throttle.take('a')], [0, 0, 1]);
    assert.deepEqual([throttle.take('b'), throttle.take('b'), throttle.take('b')], [0, 0, 1]);
    throttle.take('c');
    throttle.take('d'); // 'a' is the least recently seen: forgotten
    assert.equal(throttle.size, 3);
    assert.equal(throttle.take('b'), 1, 'b is still counted (and now the most recently seen)');
    assert.equal(throttle.take('a'), 0, 'a forgotten address starts afresh');
    now += 1000;
    assert.equal(throttle.take('b'), 0, 'one attempt more per refill period');
    for (let i = 0; i < 1000; i++) throttle.take(`spray-${i}`);
    assert.equal(throttle.size, 3);
  });

  test('scrypt work is capped globally: at most 2 in flight, a bounded queue, the rest told busy at once', async () => {
    const { WorkGate, BUSY } = await import('../../src/auth/login-guard.js');
    const gate = new WorkGate(2, 3);
    const releases: Array<() => void> = [];
    const runs = Array.from({ length: 10 }, () => gate.run(() => new Promise<string>((resolve) => releases.push(() => resolve('done')))));
    const settled = await Promise.race([Promise.all(runs.slice(5)), sleep(1000).then(() => 'timeout')]);
    assert.deepEqual(settled, [BUSY, BUSY, BUSY, BUSY, BUSY]);
    while (releases.length > 0 || gate.peakInFlight === 0) { releases.shift()?.(); await sleep(1); }
    assert.deepEqual(await Promise.all(runs.slice(0, 5)), ['done', 'done', 'done', 'done', 'done']);
    assert.equal(gate.peakInFlight, 2);
  });
});

describe('issue 11: unauthenticated broadcasts only with --public or --broadcast_key=none', () => {
  test('--noauth without a secret: broadcasts are refused (401), and a warning at start says how to open them', async () => {
    await withServer(['--noauth', '--norpc'], async (server) => {
      for (const key of [undefined, 'anything']) {
        const answer = await broadcast(server.api, { command: 'disconnect', payload: { identifier: '{"sid":"x"}', reconnect: false } }, key);
        assert.equal(answer.status, 401);
        assert.deepEqual(answer.json(), { error: 'invalid_credentials' });
      }
      await logLine(server, /HTTP broadcasts are refused \(401\): no broadcast key.*--broadcast_key=none/);
    });
  });

  for (const flags of [['--noauth', '--broadcast_key', 'none'], ['--public']]) {
    test(`${flags.join(' ')}: broadcasts need no key, with a warning at start`, async () => {
      await withServer([...flags, '--norpc'], async (server) => {
        const answer = await broadcast(server.api, { stream: 'open-stream', data: '{}' });
        assert.equal(answer.status, 201);
        const line = JSON.parse(await logLine(server, /HTTP broadcasts need no key/)) as { level: number };
        assert.equal(line.level, 40);
      });
    });
  }
});

describe('issue 11: a Prometheus without the API key is told which key the main port expects', () => {
  test('/metrics on the main port: 401, and the log line names the API key and --metrics_port', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--metrics_http', '/metrics'], async (server) => {
      const answer = await httpRequest(`${server.http}/metrics`);
      assert.equal(answer.status, 401);
      const line = JSON.parse(await logLine(server, /metrics refused \(401\)/)) as { msg: string; path: string };
      assert.match(line.msg, /Authorization: Bearer <API key> \(--api_key, or derived from --secret\)/);
      assert.match(line.msg, /--metrics_port/);
      assert.equal(line.path, '/metrics');
    });
  });
});
