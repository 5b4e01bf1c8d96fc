// --workers: what must hold once per node, not once per worker thread: the port, the RPC cap,
// max_conn, the broker (history, restore, presence), graceful shutdown, and a crashed worker's
// replacement. Broadcast fan-out through workers is in workers-broadcast.test.ts.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { withCluster, connectionsPerWorker, startCluster, type TestCluster } from '../helpers/cluster.js';
import { startServer, TEST_SECRET } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { broadcast, httpRequest, sleep } from '../helpers/http.js';
import { RpcApp } from '../helpers/rpc-app.js';
import { BROADCAST_KEY, connectExt, publishEach, subscribeStream } from '../helpers/ext-json.js';
import { SseStream } from '../helpers/sse-stream.js';
import { connectSpread, placed } from '../helpers/cluster-clients.js';
import { waitUntil } from '../helpers/wait.js';
import { signToken } from '../helpers/tokens.js';
import { deriveKey } from '../../src/auth/keys.js';
import { foreignListeners, probeExclusive } from '../../src/cluster/port-guard.js';
import { loadUws } from '../../src/server/uws.js';
import { closeApp, createApp, listen } from '../../src/server/http-server.js';

const unique = (): string => randomBytes(4).toString('hex');
const PUBLIC = ['--secret', TEST_SECRET, '--norpc', '--noauth', '--public_streams'];

/** Another process listening on `host:port` with SO_REUSEPORT (as a second server started in the gap would); resolves once it listens. */
async function reuseportListener(host: string, port: number): Promise<ChildProcessByStdio<null, Readable, null>> {
  const uwsEntry = fileURLToPath(new URL('../../src/server/uws.js', import.meta.url));
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const { loadUws } = await import(${JSON.stringify(uwsEntry)});
    loadUws().App().listen(${JSON.stringify(host)}, ${port}, 0, (s) => { console.log(s ? 'listening' : 'failed'); });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const said = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
  assert.equal(said, 'listening');
  return child;
}

async function pubsubClient(cluster: TestCluster, stream: string): Promise<{ client: RawClient; id: string }> {
  const client = await RawClient.connect(cluster.url);
  assert.equal((await client.next() as { type: string }).type, 'welcome');
  const id = identifier('$pubsub', { stream_name: stream });
  client.subscribe(id);
  assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
  return { client, id };
}

describe('workers: the port stays the node\'s alone', () => {
  test('a second server on a --workers node\'s port is refused, single-threaded or not; so is a --workers node on a taken port', async () => {
    await withCluster(PUBLIC, async (cluster) => {
      await assert.rejects(startServer([...PUBLIC, '--port', String(cluster.port)]), /port \d+ is in use/);
      await assert.rejects(startCluster([...PUBLIC, '--port', String(cluster.port)]), /port \d+ is in use/);
      // The node still serves.
      const { client } = await pubsubClient(cluster, `s-${unique()}`);
      client.close();
    });
    const single = await startServer(PUBLIC);
    try {
      await assert.rejects(startCluster([...PUBLIC, '--port', String(single.port)]), /port \d+ is in use/);
    } finally {
      await single.stop();
    }
  });

  test('the check after the workers listen sees another process sharing the port with SO_REUSEPORT, never the workers themselves', async () => {
    const uws = loadUws();
    const ours = [createApp(uws, { sslCert: '', sslKey: '' }), createApp(uws, { sslCert: '', sslKey: '' })];
    // uSockets sets SO_REUSEPORT only on a given port (as the primary gives its workers): take a free one first.
    const port = await probeExclusive(uws, '127.0.0.1', 0);
    const first = await listen(uws, ours[0]!, '127.0.0.1', port, true);
    await listen(uws, ours[1]!, '127.0.0.1', port, true);
    try {
      assert.equal(foreignListeners(first.port), 0, 'two reuseport listeners of this process are ours');
      // Another process joins the port with SO_REUSEPORT, as a second server started in the gap would.
      const intruder = await reuseportListener('127.0.0.1', first.port);
      try {
        assert.equal(foreignListeners(first.port), 1);
      } finally {
        intruder.kill('SIGKILL');
      }
    } finally {
      for (const app of ours) closeApp(app);
    }
  });

  test('a process that joins the port later (SO_REUSEPORT), or on an address our wildcard covers, is reported: error log and 503 on health', async () => {
    await withCluster(PUBLIC, async (cluster) => {
      assert.equal((await httpRequest(`${cluster.api}/health`)).status, 200);
      const intruder = await reuseportListener('127.0.0.1', cluster.port);
      try {
        await waitUntil(async () => (await httpRequest(`${cluster.api}/health`)).status === 503, 'health to answer 503');
        assert.equal((await httpRequest(`${cluster.api}/health`)).body, 'Port shared with another process (1 foreign listener)');
        assert.ok(cluster.logs.records().some((r) => r.level === 50 && String(r.msg).startsWith('another process is listening on the node\'s port')));
      } finally {
        intruder.kill('SIGKILL');
      }
      await waitUntil(async () => (await httpRequest(`${cluster.api}/health`)).status === 200, 'health to recover');
    });
    // Ours on 0.0.0.0: a foreign 127.0.0.1 listener takes our IPv4 loopback connections, so it counts.
    const uws = loadUws();
    const app = createApp(uws, { sslCert: '', sslKey: '' });
    const port = await probeExclusive(uws, '0.0.0.0', 0);
    await listen(uws, app, '0.0.0.0', port, true);
    const intruder = await reuseportListener('127.0.0.1', port);
    try {
      assert.equal(foreignListeners(port), 1);
    } finally {
      intruder.kill('SIGKILL');
      closeApp(app);
    }
  });

  test('workers are born knowing the broker is down: health answers 503 on the main port from the start', async () => {
    await withCluster([...PUBLIC, '--broker', 'redis', '--redis_url', 'redis://127.0.0.1:1'], async (cluster) => {
      for (let i = 0; i < 4; i++) {
        const answer = await httpRequest(`${cluster.http}/health`);
        assert.deepEqual([answer.status, answer.body], [503, 'Broker unavailable']);
      }
    });
  });
});

describe('workers: per-node limits', () => {
  test('--rpc_concurrency caps RPC calls in flight on the whole node, not per worker; waiting connections go on when slots free', async () => {
    const app = new RpcApp();
    const rpcPort = await app.listenGrpc();
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => { release = resolve; });
    let inFlight = 0;
    let most = 0;
    app.gate = async (call) => {
      if (call.method !== 'Connect') return;
      inFlight++;
      most = Math.max(most, inFlight);
      await held;
      inFlight--;
    };
    try {
      await withCluster(['--secret', TEST_SECRET, '--rpc_host', `127.0.0.1:${rpcPort}`, '--rpc_concurrency', '2', '--disconnect_mode', 'never'], async (cluster) => {
        const clients = Array.from({ length: 12 }, () => new RawClient(cluster.url));
        await Promise.all(clients.map((c) => c.opened));
        const perWorker = await connectionsPerWorker(cluster.primary);
        assert.ok(perWorker.every((n) => n > 0), `both workers wait on RPC (${perWorker.join('/')})`);
        await waitUntil(() => inFlight === 2, 'two Connect calls in flight');
        await sleep(300);
        assert.equal(most, 2, 'never more than --rpc_concurrency calls at once across both workers');
        release();
        for (const c of clients) assert.equal((await c.next(5000) as { type: string }).type, 'welcome');
        assert.equal(app.calls.filter((c) => c.method === 'Connect').length, 12);
        assert.equal(most, 2);
        for (const c of clients) c.close();
      });
    } finally {
      release();
      await app.stop();
    }
  });

  test('--max_conn counts the connections of every worker; a freed place is usable from any worker at once', async () => {
    await withCluster([...PUBLIC, '--max_conn', '4'], async (cluster) => {
      const open: RawClient[] = [];
      for (let i = 0; i < 4; i++) open.push((await pubsubClient(cluster, `m-${unique()}`)).client);
      for (let i = 0; i < 6; i++) {
        const refused = new RawClient(cluster.url);
        await assert.rejects(refused.opened, /unexpected response 503/);
      }
      // Free one place, then take it (from whichever worker the kernel picks) and no more.
      open.shift()?.close();
      await waitUntil(async () => (await connectionsPerWorker(cluster.primary)).reduce((a, b) => a + b, 0) === 3, 'the close to count');
      open.push((await pubsubClient(cluster, `m-${unique()}`)).client);
      await assert.rejects(new RawClient(cluster.url).opened, /unexpected response 503/);
      for (const c of open) c.close();
    });
  });
});

describe('workers: --max_conn under concurrent upgrades', () => {
  test('upgrades racing on both workers never take more than --max_conn places, and closed ones give theirs back', async () => {
    const limit = 30;
    await withCluster([...PUBLIC, '--max_conn', String(limit), '--log_level', 'error'], async (cluster) => {
      const upgrade = `GET /cable HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: actioncable-v1-json\r\n\r\n`;
      for (let round = 0; round < 8; round++) {
        const sockets = await Promise.all(Array.from({ length: 150 }, () => new Promise<Socket>((resolve) => {
          const socket = connect(cluster.port, '127.0.0.1', () => resolve(socket));
          socket.on('error', () => undefined);
        })));
        const statuses = await Promise.all(sockets.map((socket) => new Promise<string>((resolve) => {
          socket.once('data', (d: Buffer) => resolve(d.toString().split('\r\n')[0] ?? ''));
          socket.write(upgrade);
        })));
        assert.equal(statuses.filter((s) => s === 'HTTP/1.1 101 Switching Protocols').length, limit, `round ${round}`);
        assert.equal(statuses.filter((s) => s === 'HTTP/1.1 503 Service Unavailable').length, 150 - limit);
        for (const socket of sockets) socket.destroy();
        await waitUntil(async () => (await connectionsPerWorker(cluster.primary)).every((n) => n === 0), 'every place to be given back');
      }
    });
  });
});

describe('workers: node metrics', () => {
  test('clients_uniq_num counts an identifier once for the node, even with its connections on both workers', async () => {
    await withCluster(['--secret', TEST_SECRET, '--norpc', '--ping_interval', '60', '--metrics_http', '/metrics'], async (cluster) => {
      const alice = await signToken(TEST_SECRET, { ext: '{"user_id":"alice"}' }, { expiresIn: 300 });
      const bob = await signToken(TEST_SECRET, { ext: '{"user_id":"bob"}' }, { expiresIn: 300 });
      const users = [...await connectSpread(cluster, 1, `?jid=${alice}`), ...await connectSpread(cluster, 1, `?jid=${bob}`)];
      assert.ok(users.length >= 4);
      assert.equal(await scrape(cluster, 'clients_num'), users.length);
      // Two users, each connected on both workers: 2 distinct identifiers on this node (a one-thread node says 2).
      assert.equal(await scrape(cluster, 'clients_uniq_num'), 2);
      await Promise.all(users.map((p) => p.client.close()));
      await waitUntil(async () => await scrape(cluster, 'clients_uniq_num') === 0, 'the users to be gone');
    });
  });
});

describe('workers: one broker for the node (--broker memory)', () => {
  test('a session is restored on the other worker, and history catches it up on what it missed, once, in order', async () => {
    await withCluster([...PUBLIC, '--broker', 'memory'], async (cluster) => {
      const stream = `hist-${unique()}`;
      const first = await placed(cluster, () => connectExt(cluster));
      const id = await subscribeStream(first.client, stream);
      await publishEach(cluster, stream, 1, 2);
      const one = await first.client.next() as { message: number; offset: number; epoch: string };
      const two = await first.client.next() as { message: number; offset: number };
      assert.deepEqual([one.message, two.message], [1, 2]);
      first.client.close();
      await first.client.closed;
      await publishEach(cluster, stream, 3, 4);
      // Come back until the kernel puts the connection on the other worker.
      let back: Awaited<ReturnType<typeof connectExt>> & { worker: number } | null = null;
      for (let attempt = 0; attempt < 40 && back === null; attempt++) {
        const sid = String(first.welcome.sid);
        const again = await placed(cluster, () => connectExt(cluster, { query: `&sid=${sid}` }));
        if (again.worker !== first.worker) {
          back = again;
        } else {
          again.client.close();
          await again.client.closed;
        }
      }
      assert.ok(back, 'a connection landed on the other worker');
      assert.deepEqual(back.welcome, { type: 'welcome', sid: back.welcome.sid, restored: true, restored_ids: [id] });
      back.client.send({ command: 'history', identifier: id, history: { streams: { [stream]: { epoch: one.epoch, offset: two.offset } } } });
      const missed = [await back.client.next(), await back.client.next(), await back.client.next()] as Array<Record<string, unknown>>;
      assert.deepEqual(missed.map((m) => m.message ?? m.type), [3, 4, 'confirm_history']);
      await publishEach(cluster, stream, 5);
      assert.equal((await back.client.next() as { message: number }).message, 5);
      assert.equal(await back.client.nothingWithin(200), null);
      back.client.close();
    });
  });

  test('presence: a join on one worker reaches subscribers on the other, and both answer presence info with every member', async () => {
    await withCluster(['--public', '--broker', 'memory', '--presence_ttl', '1'], async (cluster) => {
      const stream = `room-${unique()}`;
      const a = await placed(cluster, () => pubsubClient(cluster, stream));
      let b = await placed(cluster, () => pubsubClient(cluster, stream));
      for (let i = 0; i < 40 && b.worker === a.worker; i++) {
        b.client.close();
        await b.client.closed;
        b = await placed(cluster, () => pubsubClient(cluster, stream));
      }
      assert.notEqual(a.worker, b.worker, 'the two members sit on different workers');
      a.client.send({ command: 'join', identifier: a.id, presence: { id: 'ann', info: { name: 'Ann' } } });
      const joined = `{"type":"presence","identifier":${JSON.stringify(a.id)},"message":{"type":"join","id":"ann","info":{"name":"Ann"}}}`;
      assert.equal(await a.client.nextText(5000), joined);
      assert.equal(await b.client.nextText(5000), joined);
      b.client.send({ command: 'presence', identifier: b.id, data: {} });
      assert.deepEqual(await b.client.next(), { type: 'presence', identifier: b.id, message: { type: 'info', total: 1, records: [{ id: 'ann', info: { name: 'Ann' } }] } });
      a.client.close();
      // Ann's session closed: after the presence TTL she leaves, and the other worker hears it.
      assert.equal(await b.client.nextText(5000), `{"type":"presence","identifier":${JSON.stringify(b.id)},"message":{"type":"leave","id":"ann"}}`);
      b.client.close();
    });
  });
});

describe('workers: lifecycle', () => {
  test('graceful shutdown: every client on every worker gets server_restart and 1001, and the app gets every Disconnect', async () => {
    const app = new RpcApp();
    const rpcPort = await app.listenGrpc();
    try {
      const cluster = await startCluster(['--secret', TEST_SECRET, '--rpc_host', `127.0.0.1:${rpcPort}`]);
      const clients: RawClient[] = [];
      for (let i = 0; i < 10; i++) {
        const client = await RawClient.connect(cluster.url);
        assert.equal((await client.next() as { type: string }).type, 'welcome');
        clients.push(client);
      }
      assert.ok((await connectionsPerWorker(cluster.primary)).every((n) => n > 0), 'clients on both workers');
      await cluster.stop();
      for (const client of clients) {
        assert.equal(await client.nextText(), '{"type":"disconnect","reason":"server_restart","reconnect":true}');
        assert.equal((await client.closed).code, 1001);
      }
      const connected = new Set(app.calls.filter((c) => c.method === 'Connect').map((c) => c.sid));
      const disconnected = new Set(app.calls.filter((c) => c.method === 'Disconnect').map((c) => c.sid));
      assert.equal(connected.size, 10);
      assert.deepEqual([...disconnected].sort(), [...connected].sort());
    } finally {
      await app.stop();
    }
  });

  test('a crashed worker is logged and replaced; the other worker\'s clients keep their connections and broadcasts; metrics never go back', async () => {
    await withCluster([...PUBLIC, '--metrics_http', '/metrics'], async (cluster) => {
      const stream = `crash-${unique()}`;
      const members: Array<{ client: RawClient; worker: number }> = [];
      for (let i = 0; i < 12; i++) members.push(await placed(cluster, () => pubsubClient(cluster, stream)));
      assert.ok(members.some((m) => m.worker === 0) && members.some((m) => m.worker === 1), 'clients on both workers');
      assert.equal((await broadcast(cluster.api, { stream, data: '"before"' }, BROADCAST_KEY)).status, 201);
      for (const m of members) assert.equal((await m.client.next() as { message: string }).message, 'before');
      const sentBefore = await scrape(cluster, 'server_msg_total');
      const threads = cluster.primary.workerThreadIds();

      cluster.primary.crashWorker(0);
      for (const m of members.filter((x) => x.worker === 0)) assert.equal((await m.client.closed).code, 1006);
      await waitUntil(() => cluster.primary.workerThreadIds().every((t, i) => t !== -1 && (i !== 0 || t !== threads[0])), 'worker 0 to be replaced');
      assert.equal(cluster.primary.workerThreadIds()[1], threads[1], 'worker 1 was left alone');
      const crashLog = cluster.logs.records().find((r) => r.msg === 'worker crashed; its connections are lost, replacing it');
      assert.equal(crashLog?.worker, 0);
      assert.match(String(crashLog?.err), /crash requested by the primary/);

      assert.equal((await broadcast(cluster.api, { stream, data: '"after"' }, BROADCAST_KEY)).status, 201);
      for (const m of members.filter((x) => x.worker === 1)) assert.equal((await m.client.next() as { message: string }).message, 'after');
      // The replacement serves: new connections land on both workers again and get broadcasts.
      const fresh: Array<{ client: RawClient; worker: number }> = [];
      for (let i = 0; i < 12; i++) fresh.push(await placed(cluster, () => pubsubClient(cluster, stream)));
      assert.ok(fresh.some((m) => m.worker === 0), 'the new worker 0 takes connections');
      assert.equal((await broadcast(cluster.api, { stream, data: '"again"' }, BROADCAST_KEY)).status, 201);
      for (const m of [...fresh, ...members.filter((x) => x.worker === 1)]) assert.equal((await m.client.next() as { message: string }).message, 'again');
      assert.ok(await scrape(cluster, 'server_msg_total') >= sentBefore, 'the dead worker\'s counts stay in the node\'s counters');
      for (const m of [...fresh, ...members]) m.client.close();
    });
  });

  test('TLS: every worker serves wss with the certificate (SSLApp per worker); clients on both get the node\'s broadcasts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cablecat-workers-tls-'));
    try {
      spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=example.test'], { stdio: 'ignore' });
      await withCluster([...PUBLIC, '--ssl_cert', join(dir, 'cert.pem'), '--ssl_key', join(dir, 'key.pem')], async (cluster) => {
        const stream = `tls-${unique()}`;
        const id = identifier('$pubsub', { stream_name: stream });
        const members: Array<{ client: RawClient; worker: number }> = [];
        for (let i = 0; i < 12; i++) {
          members.push(await placed(cluster, async () => {
            const client = await RawClient.connect(`wss://127.0.0.1:${cluster.port}/cable`, { rejectUnauthorized: false });
            assert.equal((await client.next() as { type: string }).type, 'welcome');
            client.subscribe(id);
            assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
            return { client };
          }));
        }
        assert.ok(members.some((m) => m.worker === 0) && members.some((m) => m.worker === 1), 'wss clients on both workers');
        assert.equal((await broadcast(cluster.api, { stream, data: '"secure"' }, BROADCAST_KEY)).status, 201);
        for (const m of members) assert.equal((await m.client.next() as { message: string }).message, 'secure');
        for (const m of members) m.client.close();
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a replacement that cannot start is tried again, waiting longer each time, until it starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cablecat-workers-respawn-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    try {
      spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=example.test'], { stdio: 'ignore' });
      const pem = readFileSync(cert);
      await withCluster([...PUBLIC, '--ssl_cert', cert, '--ssl_key', key], async (cluster) => {
        const before = cluster.primary.workerThreadIds();
        // Its replacement will not find the certificate.
        rmSync(cert);
        cluster.primary.crashWorker(0);
        await waitUntil(() => cluster.logs.records().filter((r) => r.msg === 'replacement worker failed to start; trying again').length >= 2, 'two failed attempts', 10_000);
        assert.equal(cluster.primary.workerThreadIds()[0], -1);
        writeFileSync(cert, pem);
        await waitUntil(() => (cluster.primary.workerThreadIds()[0] ?? -1) !== -1, 'worker 0 to be back', 15_000);
        assert.notEqual(cluster.primary.workerThreadIds()[0], before[0]);
        assert.equal(cluster.primary.workerThreadIds()[1], before[1]);
        const delays = cluster.logs.records().filter((r) => r.worker === 0 && typeof r.respawn_in_ms === 'number').map((r) => Number(r.respawn_in_ms));
        assert.ok(delays.length >= 3 && delays.every((d, i) => i === 0 || d >= (delays[i - 1] ?? 0)), `growing delays: ${delays.join(', ')}`);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('SSE clients on both workers get the node\'s broadcasts', async () => {
    await withCluster([...PUBLIC, '--sse'], async (cluster) => {
      const name = `sse-${unique()}`;
      const token = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
      const streams: SseStream[] = [];
      for (let i = 0; i < 8; i++) {
        const stream = await SseStream.open(cluster.port, `/events?stream=${name}&jid=${token}`);
        assert.equal(stream.status, 200);
        assert.equal((await stream.next()).event, 'welcome');
        assert.equal((await stream.next()).event, 'confirm_subscription');
        streams.push(stream);
      }
      const perWorker = (await cluster.primary.workerMetrics());
      assert.ok([...perWorker.values()].every((s) => s.gauges.sse_clients_num > 0), 'SSE streams on both workers');
      assert.equal((await broadcast(cluster.api, { stream: name, data: '{"n":1}' }, BROADCAST_KEY)).status, 201);
      for (const stream of streams) assert.equal((await stream.nextNonPing()).data, '{"n":1}');
      for (const stream of streams) stream.close();
    });
  });
});

async function scrape(cluster: TestCluster, name: string): Promise<number> {
  const text = (await httpRequest(`${cluster.api}/metrics`, { headers: { Authorization: `Bearer ${deriveKey(TEST_SECRET, 'api-cable')}` } })).body;
  const line = text.split('\n').find((l) => l.startsWith(`anycable_go_${name} `));
  assert.ok(line, `${name} is exported`);
  return Number(line.split(' ')[1]);
}

