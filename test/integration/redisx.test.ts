import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { startServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { identifier } from '../helpers/ws-client.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { streamSubscriber } from '../helpers/streams.js';

const unique = (): string => randomBytes(5).toString('hex');


/** The adapter creates its group in the background at start; entries XADDed before that are not for it. */
async function groupExists(redis: Redis, stream: string, group = 'bx'): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const groups = (await redis.xinfo('GROUPS', stream).catch(() => [])) as unknown[][];
    if (groups.some((g) => g[1] === group)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('consumer group never created');
}

/** Pub/sub subscriptions are made in the background: wait until both nodes listen on the stream. */
async function bothNodesListen(redis: Redis, stream: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const reply = (await redis.call('PUBSUB', 'NUMSUB', `cablecat:stream:${stream}`)) as [string, number];
    if (Number(reply[1]) >= 2) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('pub/sub subscriptions never made');
}

describe('redisx broadcast adapter (Redis Streams consumer group)', () => {
  const redisStream = `test-redisx-${unique()}`;
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
  let nodes: TestServer[] = [];
  before(async () => {
    await redis.connect();
    const args = ['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broadcast_adapter', 'redisx', '--redisx_stream', redisStream, '--pubsub', 'redis'];
    nodes = [await startServer(args), await startServer(args)];
    await groupExists(redis, redisStream);
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await redis.del(redisStream);
    await redis.quit();
  });

  test('an XADDed broadcast reaches the subscribers of both nodes exactly once, in order, and is deleted', async () => {
    const stream = `room-${unique()}`;
    const a = await streamSubscriber(nodes[0]!, stream);
    const b = await streamSubscriber(nodes[1]!, stream);
    await bothNodesListen(redis, stream);
    for (let n = 1; n <= 5; n++) await redis.xadd(redisStream, '*', 'payload', JSON.stringify({ stream, data: JSON.stringify({ n }) }));
    await redis.xadd(redisStream, '*', 'payload', JSON.stringify([{ stream, data: '{"n":6}' }, { stream, data: '{"n":7}' }]));
    for (const { client, id } of [a, b]) {
      for (let n = 1; n <= 7; n++) assert.deepEqual(await client.next(), { identifier: id, message: { n } });
      assert.equal(await client.nothingWithin(300), null, 'no duplicates');
    }
    assert.equal(await redis.xlen(redisStream), 0, 'handled entries are acknowledged and deleted');
    await a.client.close();
    await b.client.close();
  });

  test('an entry without payload or with garbage is counted and skipped; the next one still arrives', async () => {
    const stream = `room-${unique()}`;
    const a = await streamSubscriber(nodes[0]!, stream);
    const failed = (): number => nodes.reduce((sum, n) => sum + n.app.metrics.counters.failed_broadcast_msg_total, 0);
    const before = failed();
    await redis.xadd(redisStream, '*', 'other', 'x');
    await redis.xadd(redisStream, '*', 'payload', '{not json');
    await redis.xadd(redisStream, '*', 'payload', JSON.stringify({ stream, data: '"ok"' }));
    assert.deepEqual(await a.client.next(), { identifier: a.id, message: 'ok' });
    assert.equal(failed(), before + 2);
    await a.client.close();
  });
});

describe('redisx across a Redis restart', () => {
  test('the reader comes back after the connection is cut, and its group is recreated if Redis lost it', async () => {
    const redisStream = `test-redisx-${unique()}`;
    const proxy = new TcpProxy(6379);
    const port = await proxy.start();
    const redis = new Redis('redis://127.0.0.1:6379');
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broadcast_adapter', 'redisx',
      '--redisx_stream', redisStream, '--redis_url', `redis://127.0.0.1:${port}`, '--pubsub', 'none']);
    try {
      const stream = `room-${unique()}`;
      const a = await streamSubscriber(server, stream);
      await groupExists(redis, redisStream);
      await redis.xadd(redisStream, '*', 'payload', JSON.stringify({ stream, data: '1' }));
      assert.deepEqual(await a.client.next(), { identifier: a.id, message: 1 });
      proxy.cut();
      // As if Redis restarted empty: the stream and its group are gone.
      await redis.del(redisStream);
      await redis.xgroup('CREATE', redisStream, 'unrelated', '$', 'MKSTREAM');
      await redis.xadd(redisStream, '*', 'payload', JSON.stringify({ stream, data: '2' }));
      // Entries added before the group existed are not for it ($); later ones are.
      for (let i = 0; i < 100; i++) {
        await redis.xadd(redisStream, '*', 'payload', JSON.stringify({ stream, data: '3' }));
        const frame = await a.client.next(200).catch(() => null);
        if (frame !== null) {
          assert.deepEqual(frame, { identifier: a.id, message: 3 });
          break;
        }
        if (i === 99) assert.fail('no broadcast after the cut');
      }
      await a.client.close();
    } finally {
      await server.stop();
      await proxy.stop();
      await redis.del(redisStream);
      await redis.quit();
    }
  });
});
