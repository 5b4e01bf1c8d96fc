import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { httpRequest } from '../helpers/http.js';
import { waitUntil } from '../helpers/wait.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { connectExt, framesUntil, publishEach, subscribeStream, type Positioned } from '../helpers/ext-json.js';

const unique = (): string => randomBytes(5).toString('hex');

/** Sends probes until a subscriber on each node got one: pub/sub subscriptions are made in the background. */
async function settle(via: TestServer, stream: string, clients: RawClient[]): Promise<void> {
  const got = new Set<RawClient>();
  for (let i = 0; got.size < clients.length; i++) {
    if (i > 100) throw new Error('pub/sub never settled');
    await publishEach(via, stream, `probe-${i}`);
    for (const c of clients) if (!got.has(c) && (await c.next(100).catch(() => null)) !== null) got.add(c);
  }
  for (const c of clients) while ((await c.next(150).catch(() => null)) !== null);
}

for (const kind of ['redis', 'nats'] as const) {
  describe(`--broker ${kind} on two nodes`, () => {
    let a: TestServer;
    let b: TestServer;
    before(async () => {
      const args = ['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', kind];
      a = await startServer(args);
      b = await startServer(args);
      for (const node of [a, b]) await waitUntil(async () => (await httpRequest(`${node.http}/health`)).status === 200, 'the broker is ready', 10_000);
    });
    after(async () => {
      await a.stop();
      await b.stop();
    });

    test('positions are shared: a broadcast into either node gets the next offset of one epoch', async () => {
      const stream = `s-${unique()}`;
      const onA = await connectExt(a);
      const onB = await connectExt(b);
      await subscribeStream(onA.client, stream);
      await subscribeStream(onB.client, stream);
      await settle(a, stream, [onA.client, onB.client]);
      // Broadcasts entering two nodes at once may go out in either order: one at a time here.
      await publishEach(a, stream, 'x');
      const fromA = [(await onA.client.next()) as Positioned];
      const fromB = [(await onB.client.next()) as Positioned];
      await publishEach(b, stream, 'y');
      fromA.push((await onA.client.next()) as Positioned);
      fromB.push((await onB.client.next()) as Positioned);
      assert.deepEqual(fromA.map((f) => f.message), ['x', 'y']);
      assert.deepEqual(fromB.map((f) => [f.message, f.epoch, f.offset]), fromA.map((f) => [f.message, f.epoch, f.offset]));
      assert.equal(fromA[0]!.epoch, fromA[1]!.epoch);
      assert.ok(fromA[1]!.offset > fromA[0]!.offset);
      await onA.client.close();
      await onB.client.close();
    });

    test('a session left on one node is restored on the other, and catches up from its position', async () => {
      const stream = `s-${unique()}`;
      const first = await connectExt(a);
      const id = await subscribeStream(first.client, stream);
      await settle(a, stream, [first.client]);
      await publishEach(a, stream, 1);
      const seen = (await first.client.next()) as Positioned;
      await first.client.close();
      await publishEach(b, stream, 2, 3);
      const restores = b.app.metrics.counters.sessions_restored_total;
      const second = await connectExt(b, { query: `&sid=${String(first.welcome.sid)}` });
      assert.deepEqual(second.welcome, { type: 'welcome', sid: second.welcome.sid, restored: true, restored_ids: [id] });
      assert.equal(b.app.metrics.counters.sessions_restored_total, restores + 1);
      second.client.send({ command: 'history', identifier: id, history: { streams: { [stream]: { epoch: seen.epoch, offset: seen.offset } } } });
      const caught = await framesUntil(second.client, 'confirm_history', 5000);
      assert.deepEqual(caught.map((f) => f.message), [2, 3]);
      assert.ok(caught.every((f) => f.epoch === seen.epoch && f.stream_id === stream && f.identifier === id));
      await publishEach(a, stream, 4);
      const live = (await second.client.next(5000)) as Positioned;
      assert.equal(live.message, 4);
      assert.ok(live.offset > caught[1]!.offset);
      assert.equal(await second.client.nothingWithin(300), null, 'nothing twice');
      await second.client.close();
    });

    test('subscribe with history.since on one node returns what was broadcast through the other', async () => {
      const stream = `s-${unique()}`;
      await publishEach(a, stream, 'old-1', 'old-2');
      const { client } = await connectExt(b);
      const id = await subscribeStream(client, stream, { since: Math.floor(Date.now() / 1000) - 30 });
      const history = await framesUntil(client, 'confirm_history', 5000);
      assert.deepEqual(history.map((f) => [f.identifier, f.message]), [[id, 'old-1'], [id, 'old-2']]);
      client.send({ command: 'history', identifier: id, history: { streams: { [stream]: { epoch: 'gone', offset: 1 } } } });
      assert.deepEqual(await client.next(5000), { type: 'reject_history', identifier: id });
      await client.close();
    });
  });
}

describe('broker restarts (connections cut through a proxy)', () => {
  for (const kind of ['redis', 'nats'] as const) {
    test(`--broker ${kind}: /health says 503 while it is down, broadcasts are held, and it recovers without a restart`, async () => {
      const proxy = new TcpProxy(kind === 'redis' ? 6379 : 4222);
      const port = await proxy.start();
      const url = kind === 'redis' ? ['--redis_url', `redis://127.0.0.1:${port}`] : ['--nats_servers', `nats://127.0.0.1:${port}`];
      const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', kind, ...url]);
      try {
        const health = async (): Promise<number> => (await httpRequest(`${server.http}/health`)).status;
        await waitUntil(async () => (await health()) === 200, 'the node is healthy', 10_000);
        const stream = `s-${unique()}`;
        const { client } = await connectExt(server);
        const id = await subscribeStream(client, stream);
        await settle(server, stream, [client]);
        await publishEach(server, stream, 'before');
        const before = (await client.next()) as Positioned;
        await proxy.stop();
        await waitUntil(async () => (await health()) === 503, 'the node is unhealthy', 10_000);
        assert.equal((await httpRequest(`${server.http}/health`)).body, 'Broker unavailable');
        await publishEach(server, stream, 'during');
        await proxy.start(port);
        await waitUntil(async () => (await health()) === 200, 'the node is healthy again', 10_000);
        const during = (await client.next(10_000)) as Positioned;
        assert.equal(during.message, 'during');
        assert.equal(during.epoch, before.epoch);
        assert.ok(during.offset > before.offset);
        client.send({ command: 'history', identifier: id, history: { streams: { [stream]: { epoch: before.epoch, offset: before.offset } } } });
        assert.deepEqual((await framesUntil(client, 'confirm_history', 5000)).map((f) => f.message), ['during']);
        await client.close();
      } finally {
        await server.stop();
        await proxy.stop();
      }
    });
  }
});
