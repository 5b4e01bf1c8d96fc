// --workers 2: what users see when one node's clients are spread over two worker threads (functional, no timings).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { connect as natsConnect } from 'nats';
import { TEST_SECRET } from '../helpers/server.js';
import { withCluster, connectionsPerWorker, type TestCluster } from '../helpers/cluster.js';
import { connectSpread, type PlacedClient } from '../helpers/cluster-clients.js';
import { waitUntil } from '../helpers/wait.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { broadcast, httpRequest, sleep } from '../helpers/http.js';
import { signToken } from '../helpers/tokens.js';
import { freePort } from '../helpers/tcp-proxy.js';
import { deriveKey } from '../../src/auth/keys.js';
import { signStreamName } from '../../src/streams/verifier.js';
import { parsePrometheus } from '../helpers/prometheus.js';

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');
const API_KEY = deriveKey(TEST_SECRET, 'api-cable');
/** No pings during a test: frame counts stay exact. */
const BASE = ['--secret', TEST_SECRET, '--norpc', '--public_streams', '--ping_interval', '60'];

let uniq = 0;
/** A name no other test (or test run on this machine) uses: Redis and NATS are shared. */
function unique(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${uniq++}`;
}

async function jwtQuery(userId: string): Promise<{ query: string; identifiers: string }> {
  const identifiers = JSON.stringify({ user_id: userId });
  const token = await signToken(TEST_SECRET, { ext: identifiers }, { expiresIn: 300 });
  return { query: `?jid=${token}`, identifiers };
}

function streamId(stream: string): string {
  return identifier('$pubsub', { stream_name: stream });
}

async function subscribe(client: RawClient, id: string): Promise<void> {
  client.subscribe(id);
  assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
}

/** Reads exactly these frames, in this order. */
async function expectFrames(client: RawClient, expected: readonly unknown[]): Promise<void> {
  for (let i = 0; i < expected.length; i++) assert.deepEqual(await client.next(), expected[i], `frame ${i}`);
}

/** Nothing more arrives on any of them (no duplicates, nothing excluded leaked). */
async function allQuiet(clients: readonly RawClient[], ms = 250): Promise<void> {
  const extra = await Promise.all(clients.map((c) => c.nothingWithin(ms)));
  assert.deepEqual(extra, clients.map(() => null), 'no further frames');
}

function onWorker(placed: readonly PlacedClient[], worker: number): PlacedClient[] {
  return placed.filter((p) => p.worker === worker);
}

async function closeAll(placed: readonly { client: RawClient }[]): Promise<void> {
  await Promise.all(placed.map((p) => p.client.close()));
}

/** Clients of `user`, two on each worker, all subscribed to a fresh stream named from `prefix`. */
async function spreadOnStream(cluster: TestCluster, user: string, prefix: string): Promise<{ placed: PlacedClient[]; stream: string; id: string }> {
  const { query } = await jwtQuery(user);
  const placed = await connectSpread(cluster, 2, query);
  const stream = unique(prefix);
  const id = streamId(stream);
  for (const p of placed) await subscribe(p.client, id);
  return { placed, stream, id };
}

/** Every client reads `count` frames with messages `{ n }`, n = 0, 1, …, in order, then nothing more. */
async function allGetNumbered(placed: readonly PlacedClient[], id: string, count: number): Promise<void> {
  const expected = Array.from({ length: count }, (_, n) => ({ identifier: id, message: { n } }));
  await Promise.all(placed.map((p) => expectFrames(p.client, expected)));
  await allQuiet(placed.map((p) => p.client));
}

async function scrape(url: string, key?: string): Promise<Map<string, number>> {
  const answer = await httpRequest(url, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  assert.equal(answer.status, 200, answer.body);
  return parsePrometheus(answer.body);
}

async function workerCounter(cluster: TestCluster, name: 'disconnected_slow_clients_total'): Promise<number> {
  let sum = 0;
  for (const snapshot of (await cluster.primary.workerMetrics()).values()) sum += snapshot.counters[name];
  return sum;
}

describe('--workers 2: connections', () => {
  test('20 clients are spread over both workers; each gets its welcome and confirm as usual', async () => {
    await withCluster(BASE, async (cluster) => {
      const { query } = await jwtQuery('spread');
      const clients: RawClient[] = [];
      const sids = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const client = await RawClient.connect(`${cluster.url}${query}`);
        const welcome = (await client.next()) as { sid: string };
        assert.deepEqual(welcome, { type: 'welcome', sid: welcome.sid });
        sids.add(welcome.sid);
        clients.push(client);
      }
      assert.equal(sids.size, 20, 'every connection has its own sid, across workers');
      const perWorker = await connectionsPerWorker(cluster.primary);
      assert.equal(perWorker.length, 2);
      assert.equal(perWorker[0]! + perWorker[1]!, 20);
      assert.ok(perWorker[0]! > 0 && perWorker[1]! > 0, `both workers have clients: ${JSON.stringify(perWorker)}`);
      const id = streamId('spread');
      for (const c of clients) await subscribe(c, id);
      await Promise.all(clients.map((c) => c.close()));
      await waitUntil(async () => (await connectionsPerWorker(cluster.primary)).every((n) => n === 0), 'every worker has 0 clients');
    });
  });
});

describe('--workers 2: HTTP broadcasts', () => {
  for (const via of ['the API listener', 'the main port'] as const) {
    test(`through ${via}: every subscriber on both workers gets every message once, in order per stream`, async () => {
      await withCluster(BASE, async (cluster) => {
        const base = via === 'the API listener' ? cluster.api : cluster.http;
        assert.ok(base !== '');
        const { query } = await jwtQuery('http');
        const placed = await connectSpread(cluster, 3, query);
        const [a, b] = [unique('ha'), unique('hb')];
        const [idA, idB] = [streamId(a), streamId(b)];
        // Per worker: one client on A only, one on B only, the rest on both.
        const follows = new Map<PlacedClient, Array<'A' | 'B'>>();
        for (const w of [0, 1]) {
          onWorker(placed, w).forEach((p, i) => follows.set(p, i === 0 ? ['A'] : i === 1 ? ['B'] : ['A', 'B']));
        }
        for (const [p, streams] of follows) for (const s of streams) await subscribe(p.client, s === 'A' ? idA : idB);

        // 50 messages, A and B interleaved: 40 one by one, then one batch of 10.
        const messages = Array.from({ length: 50 }, (_, n) => ({ stream: n % 3 === 0 ? 'B' as const : 'A' as const, n }));
        const payload = (m: { stream: 'A' | 'B'; n: number }): { stream: string; data: string } => ({ stream: m.stream === 'A' ? a : b, data: JSON.stringify({ n: m.n }) });
        for (const m of messages.slice(0, 40)) assert.equal((await broadcast(base, payload(m), BROADCAST_KEY)).status, 201);
        assert.equal((await broadcast(base, messages.slice(40).map(payload), BROADCAST_KEY)).status, 201);

        await Promise.all([...follows].map(async ([p, streams]) => {
          const mine = messages.filter((m) => streams.includes(m.stream));
          const got: unknown[] = [];
          for (let i = 0; i < mine.length; i++) got.push(await p.client.next());
          for (const s of streams) {
            const id = s === 'A' ? idA : idB;
            assert.deepEqual(
              got.filter((f) => (f as { identifier: string }).identifier === id),
              mine.filter((m) => m.stream === s).map((m) => ({ identifier: id, message: { n: m.n } })),
              `worker ${p.worker}, stream ${s}`,
            );
          }
        }));
        await allQuiet(placed.map((p) => p.client));
        await closeAll(placed);
      });
    });
  }
});

describe('--workers 2: Redis and NATS broadcast adapters', () => {
  test('--broadcast_adapter redis: one subscription for the node; every message reaches every subscriber once, in order', async () => {
    const channel = unique('__anycable_wtest__');
    const redis = new Redis('redis://127.0.0.1:6379');
    try {
      await withCluster([...BASE, '--broadcast_adapter', 'http,redis', '--redis_channel', channel], async (cluster) => {
        const { placed, stream, id } = await spreadOnStream(cluster, 'redis-adapter', 'ra');
        await waitUntil(async () => (await redis.pubsub('NUMSUB', channel))[1] === 1, 'the node subscribed the broadcast channel');
        await sleep(200);
        assert.deepEqual(await redis.pubsub('NUMSUB', channel), [channel, 1], 'the primary subscribes once, not once per worker');
        for (let n = 0; n < 20; n++) await redis.publish(channel, JSON.stringify({ stream, data: JSON.stringify({ n }) }));
        await allGetNumbered(placed, id, 20);
        await closeAll(placed);
      });
    } finally {
      redis.disconnect();
    }
  });

  test('--broadcast_adapter nats: every message reaches every subscriber once, in order', async () => {
    const subject = unique('anycable_wtest').replace(/-/g, '_');
    const nats = await natsConnect({ servers: 'nats://127.0.0.1:4222' });
    try {
      await withCluster([...BASE, '--broadcast_adapter', 'nats', '--nats_channel', subject], async (cluster) => {
        const { placed, stream, id } = await spreadOnStream(cluster, 'nats-adapter', 'na');
        await waitUntil(() => cluster.primary.metrics.gauge('broker_connected') === 1, 'the node is connected to NATS');
        // Core NATS keeps nothing for late subscribers: give the SUB a moment to reach the server.
        await sleep(300);
        const encoder = new TextEncoder();
        for (let n = 0; n < 20; n++) nats.publish(subject, encoder.encode(JSON.stringify({ stream, data: JSON.stringify({ n }) })));
        await nats.flush();
        await allGetNumbered(placed, id, 20);
        await closeAll(placed);
      });
    } finally {
      await nats.close();
    }
  });
});

describe('--workers 2: redisx broadcast adapter', () => {
  test('--broadcast_adapter redisx: one consumer for the node; every entry reaches every subscriber once, in order', async () => {
    const redisStream = unique('wtest-redisx');
    const redis = new Redis('redis://127.0.0.1:6379');
    try {
      await withCluster([...BASE, '--broadcast_adapter', 'redisx', '--redisx_stream', redisStream], async (cluster) => {
        const { placed, stream, id } = await spreadOnStream(cluster, 'redisx', 'rx');
        // The group is created in the background at start; entries added before it are not for it.
        await waitUntil(async () => ((await redis.xinfo('GROUPS', redisStream).catch(() => [])) as unknown[][]).some((g) => g[1] === 'bx'), 'the consumer group exists');
        for (let n = 0; n < 10; n++) await redis.xadd(redisStream, '*', 'payload', JSON.stringify({ stream, data: JSON.stringify({ n }) }));
        await redis.xadd(redisStream, '*', 'payload', JSON.stringify([{ stream, data: '{"n":10}' }, { stream, data: '{"n":11}' }]));
        await allGetNumbered(placed, id, 12);
        assert.equal(((await redis.xinfo('CONSUMERS', redisStream, 'bx')) as unknown[]).length, 1, 'the primary reads the stream, not each worker');
        await waitUntil(async () => (await redis.xlen(redisStream)) === 0, 'handled entries are deleted');
        await closeAll(placed);
      });
    } finally {
      await redis.del(redisStream);
      redis.disconnect();
    }
  });
});

for (const kind of ['redis', 'nats'] as const) {
  describe(`--workers 2: two nodes with --pubsub ${kind}`, () => {
    test('a broadcast into either node reaches both workers of both nodes once; one pub/sub subscription per node and stream', async () => {
      const common = [...BASE, '--pubsub', kind];
      const redis = kind === 'redis' ? new Redis('redis://127.0.0.1:6379') : null;
      const stream = unique(`wps-${kind}`);
      const channel = `cablecat:stream:${stream}`;
      const numsub = async (): Promise<number> => Number((await redis!.pubsub('NUMSUB', channel))[1]);
      /** For Redis: the count reaches `n` and stays there. For NATS (no way to look): a moment for the SUBs. */
      const subscriptions = async (n: number): Promise<void> => {
        if (!redis) {
          await sleep(300);
          return;
        }
        await waitUntil(async () => (await numsub()) === n, `NUMSUB ${channel} is ${n}`);
        await sleep(200);
        assert.equal(await numsub(), n, 'one subscription per node, not per worker');
      };
      try {
        await withCluster(common, async (nodeA) => {
          await withCluster(common, async (nodeB) => {
            const { query, identifiers } = await jwtQuery(unique('pubsub-user'));
            const id = streamId(stream);
            const onA = await connectSpread(nodeA, 1, query);
            for (const p of onA) await subscribe(p.client, id);
            await subscriptions(1);
            const onB = await connectSpread(nodeB, 1, query);
            for (const p of onB) await subscribe(p.client, id);
            await subscriptions(2);
            for (const node of [nodeA, nodeB]) assert.equal(node.primary.metrics.gauge('broadcast_streams_num'), 1);
            const everyone = [...onA, ...onB];

            for (const [node, from] of [[nodeA, 0], [nodeB, 10]] as const) {
              for (let n = from; n < from + 10; n++) assert.equal((await broadcast(node.api, { stream, data: JSON.stringify({ n }) }, BROADCAST_KEY)).status, 201);
              const expected = Array.from({ length: 10 }, (_, i) => ({ identifier: id, message: { n: from + i } }));
              await Promise.all(everyone.map((p) => expectFrames(p.client, expected)));
            }
            await allQuiet(everyone.map((p) => p.client));

            // exclude_socket crosses nodes: a sid on node B's worker 1, broadcast into node A.
            const excluded = onWorker(onB, 1)[0]!;
            assert.equal((await broadcast(nodeA.api, { stream, data: '"not for one"', meta: { exclude_socket: excluded.sid } }, BROADCAST_KEY)).status, 201);
            await Promise.all(everyone.filter((p) => p !== excluded).map((p) => expectFrames(p.client, [{ identifier: id, message: 'not for one' }])));
            await allQuiet(everyone.map((p) => p.client));

            // Node A's worker 0 leaves the stream; its worker 1 still follows it: A keeps its one subscription.
            const [leftA, keptA] = [onWorker(onA, 0), onWorker(onA, 1)];
            for (const p of leftA) p.client.send({ command: 'unsubscribe', identifier: id });
            await subscriptions(2);
            assert.equal(nodeA.primary.metrics.gauge('broadcast_streams_num'), 1, 'node A still follows the stream');
            assert.equal((await broadcast(nodeB.api, { stream, data: '"after a partial leave"' }, BROADCAST_KEY)).status, 201);
            await Promise.all([...keptA, ...onB].map((p) => expectFrames(p.client, [{ identifier: id, message: 'after a partial leave' }])));
            await allQuiet(everyone.map((p) => p.client));

            for (const p of keptA) p.client.send({ command: 'unsubscribe', identifier: id });
            if (redis) await waitUntil(async () => (await numsub()) === 1, 'node A left the channel');
            await waitUntil(() => nodeA.primary.metrics.gauge('broadcast_streams_num') === 0, 'node A follows nothing');
            for (const p of onB) p.client.send({ command: 'unsubscribe', identifier: id });
            if (redis) await waitUntil(async () => (await numsub()) === 0, 'no node listens on the channel');
            await waitUntil(() => nodeB.primary.metrics.gauge('broadcast_streams_num') === 0, 'node B follows nothing');

            // Remote disconnect through pub/sub: every connection of that user, on every worker of both nodes.
            assert.equal((await broadcast(nodeB.api, { command: 'disconnect', payload: { identifier: identifiers, reconnect: false } }, BROADCAST_KEY)).status, 201);
            await Promise.all(everyone.map(async (p) => {
              assert.deepEqual(await p.client.next(), { type: 'disconnect', reason: 'remote', reconnect: false });
              assert.equal((await p.client.closed).code, 1000);
            }));
          });
        });
      } finally {
        redis?.disconnect();
      }
    });
  });
}

describe('--workers 2: per-node semantics', () => {
  test('a remote disconnect closes every connection with those identifiers on both workers; others stay', async () => {
    await withCluster(BASE, async (cluster) => {
      const gone = await jwtQuery(unique('gone'));
      const stays = await jwtQuery(unique('stays'));
      const leaving = await connectSpread(cluster, 2, gone.query);
      const staying = await connectSpread(cluster, 2, stays.query);
      const stream = unique('rd');
      const id = streamId(stream);
      for (const p of staying) await subscribe(p.client, id);

      assert.equal((await broadcast(cluster.api, { command: 'disconnect', payload: { identifier: gone.identifiers, reconnect: false } }, BROADCAST_KEY)).status, 201);
      await Promise.all(leaving.map(async (p) => {
        assert.deepEqual(await p.client.next(), { type: 'disconnect', reason: 'remote', reconnect: false });
        assert.equal((await p.client.closed).code, 1000);
      }));
      await waitUntil(async () => {
        const counts = await connectionsPerWorker(cluster.primary);
        return [0, 1].every((w) => counts[w] === onWorker(staying, w).length);
      }, 'only the other user\'s connections remain');
      assert.equal((await broadcast(cluster.api, { stream, data: '"still here"' }, BROADCAST_KEY)).status, 201);
      await Promise.all(staying.map((p) => expectFrames(p.client, [{ identifier: id, message: 'still here' }])));
      await allQuiet(staying.map((p) => p.client));
      await closeAll(staying);
    });
  });

  test('meta.exclude_socket: that one client gets nothing, every other subscriber on both workers gets it', async () => {
    await withCluster(BASE, async (cluster) => {
      const { placed, stream, id } = await spreadOnStream(cluster, 'exclude', 'ex');
      // Excluded in turn: one client on worker 0, then one on worker 1, then nobody.
      const excluded = [onWorker(placed, 0)[0]!, onWorker(placed, 1)[0]!, null];
      for (const [n, who] of excluded.entries()) {
        const meta = who ? { meta: { exclude_socket: who.sid } } : {};
        assert.equal((await broadcast(cluster.api, { stream, data: JSON.stringify({ n }), ...meta }, BROADCAST_KEY)).status, 201);
      }
      await Promise.all(placed.map((p) => expectFrames(p.client,
        excluded.flatMap((who, n) => (who === p ? [] : [{ identifier: id, message: { n } }])))));
      await allQuiet(placed.map((p) => p.client));
      await closeAll(placed);
    });
  });

  test('a slow client is evicted with too_slow; the others on both workers keep receiving everything', async () => {
    await withCluster([...BASE, '--ws_max_pending_size', '65536'], async (cluster) => {
      const { placed, stream, id } = await spreadOnStream(cluster, 'slow', 'firehose');
      const slow = onWorker(placed, 0)[0]!;
      const fast = placed.filter((p) => p !== slow);
      slow.client.pauseReading();
      const pad = 'y'.repeat(16 * 1024);
      const received = new Map<PlacedClient, number>(fast.map((p) => [p, 0]));
      /** Takes what each fast client has so far and checks it is the next messages, in order. */
      const drain = (): void => {
        for (const p of fast) {
          for (const frame of p.client.frames.splice(0)) {
            const next = received.get(p)!;
            assert.equal(frame, JSON.stringify({ identifier: id, message: `${next}:${pad}` }), `worker ${p.worker}: message ${next}`);
            received.set(p, next + 1);
          }
        }
      };
      let sent = 0;
      let evictedAt = -1;
      // Past the eviction a few more go out, to show the others are not held up by it.
      while (sent < 800 && (evictedAt < 0 || sent < evictedAt + 20)) {
        assert.equal((await broadcast(cluster.api, { stream, data: JSON.stringify(`${sent}:${pad}`) }, BROADCAST_KEY)).status, 201);
        sent++;
        await sleep(1);
        drain();
        if (evictedAt < 0 && sent % 10 === 0 && (await workerCounter(cluster, 'disconnected_slow_clients_total')) > 0) {
          evictedAt = sent;
          // uWS gives a closing socket only a few seconds to take its close frame.
          slow.client.resumeReading();
        }
      }
      await waitUntil(async () => (await workerCounter(cluster, 'disconnected_slow_clients_total')) > 0, 'the slow client is evicted');
      slow.client.resumeReading();
      assert.equal((await slow.client.closed).code, 1000);
      assert.ok(slow.client.frames.includes('{"type":"disconnect","reason":"too_slow","reconnect":true}'), 'the slow client was told too_slow');
      assert.equal(await workerCounter(cluster, 'disconnected_slow_clients_total'), 1, 'only the slow one');
      await waitUntil(() => {
        drain();
        return fast.every((p) => received.get(p) === sent);
      }, `every fast client has all ${sent} messages`);
      await sleep(200);
      drain();
      assert.deepEqual(fast.map((p) => received.get(p)), fast.map(() => sent), 'exactly once each');
      await closeAll(fast);
    });
  });

  test('whispers from a client on one worker reach subscribers on both workers, never the sender (public and signed streams)', async () => {
    const cases = [
      { args: BASE, name: 'public', id: (s: string) => streamId(s) },
      { args: [...BASE, '--streams_whisper'], name: 'signed', id: (s: string) => identifier('$pubsub', { signed_stream_name: signStreamName(TEST_SECRET, s) }) },
    ];
    for (const { args, name, id: idOf } of cases) {
      await withCluster(args, async (cluster) => {
        const { query } = await jwtQuery(`whisper-${name}`);
        const placed = await connectSpread(cluster, 2, query);
        const stream = unique(`w-${name}`);
        const id = idOf(stream);
        for (const p of placed) await subscribe(p.client, id);
        const senders = [onWorker(placed, 0)[0]!, onWorker(placed, 1)[0]!];
        for (const [n, sender] of senders.entries()) {
          sender.client.send({ command: 'whisper', identifier: id, data: { typing: n } });
          // Everyone else has it before the next goes out: the order across senders is then fixed.
          await Promise.all(placed.filter((p) => p !== sender).map((p) => expectFrames(p.client, [{ identifier: id, message: { typing: n } }])));
        }
        // A broadcast after the whispers: a sender that had its own whisper would see it before this one.
        assert.equal((await broadcast(cluster.api, { stream, data: '"after"' }, BROADCAST_KEY)).status, 201);
        await Promise.all(placed.map((p) => expectFrames(p.client, [{ identifier: id, message: 'after' }])));
        await allQuiet(placed.map((p) => p.client));
        await closeAll(placed);
      });
    }
  });
});

describe('--workers 2: one /metrics for the node', () => {
  /** n clients on both workers follow S1, one on worker 1 also S2; 3 broadcasts on S1, 1 on S2; all received. */
  async function scenario(cluster: TestCluster): Promise<{ placed: PlacedClient[]; expectedServerMsgs: number }> {
    const { query } = await jwtQuery('metrics');
    const placed = await connectSpread(cluster, 2, query);
    const [s1, s2] = [unique('m1'), unique('m2')];
    const [id1, id2] = [streamId(s1), streamId(s2)];
    for (const p of placed) await subscribe(p.client, id1);
    const extra = onWorker(placed, 1)[0]!;
    await subscribe(extra.client, id2);
    await waitUntil(() => cluster.primary.metrics.gauge('broadcast_streams_num') === 2, 'the node follows both streams');
    for (let n = 0; n < 3; n++) assert.equal((await broadcast(cluster.api || cluster.http, { stream: s1, data: JSON.stringify({ n }) }, BROADCAST_KEY)).status, 201);
    assert.equal((await broadcast(cluster.api || cluster.http, { stream: s2, data: '"two"' }, BROADCAST_KEY)).status, 201);
    await Promise.all(placed.map((p) => expectFrames(p.client, [0, 1, 2].map((n) => ({ identifier: id1, message: { n } })))));
    await expectFrames(extra.client, [{ identifier: id2, message: 'two' }]);
    const n = placed.length;
    // welcome + confirm for each, one more confirm, 3 deliveries to each, 1 more delivery.
    return { placed, expectedServerMsgs: n + n + 1 + 3 * n + 1 };
  }

  function assertNode(m: Map<string, number>, clients: number, serverMsgs: number): void {
    assert.equal(m.get('anycable_go_clients_num'), clients, 'clients on both workers');
    assert.equal(m.get('anycable_go_broadcast_msg_total'), 4, 'each broadcast counted once, not once per worker');
    assert.equal(m.get('anycable_go_server_msg_total'), serverMsgs, 'every frame sent by both workers');
    assert.equal(m.get('anycable_go_broadcast_streams_num'), 2, 'a stream followed on both workers counts once');
    assert.equal(m.get('anycable_go_failed_broadcast_msg_total'), 0);
  }

  test('--metrics_http on the API port and the main port (API key): the node\'s sums', async () => {
    await withCluster([...BASE, '--metrics_http', '/metrics'], async (cluster) => {
      const { placed, expectedServerMsgs } = await scenario(cluster);
      assertNode(await scrape(`${cluster.api}/metrics`, API_KEY), placed.length, expectedServerMsgs);
      // Served by whichever worker takes the request: the same node-wide numbers.
      for (let i = 0; i < 4; i++) assertNode(await scrape(`${cluster.http}/metrics`, API_KEY), placed.length, expectedServerMsgs);
      assert.equal((await httpRequest(`${cluster.http}/metrics`)).status, 401);
      await closeAll(placed);
      await waitUntil(async () => (await scrape(`${cluster.api}/metrics`, API_KEY)).get('anycable_go_clients_num') === 0, 'clients_num back to 0');
    });
  });

  test('a separate --metrics_port serves the node\'s sums without a key', async () => {
    const port = await freePort();
    await withCluster([...BASE, '--metrics_http', '/metrics', '--metrics_port', String(port)], async (cluster) => {
      assert.equal(cluster.primary.metricsPort, port);
      const { placed, expectedServerMsgs } = await scenario(cluster);
      assertNode(await scrape(`http://127.0.0.1:${port}/metrics`), placed.length, expectedServerMsgs);
      assert.equal((await httpRequest(`${cluster.http}/metrics`, { headers: { Authorization: `Bearer ${API_KEY}` } })).status, 404, 'not on the main port then');
      await closeAll(placed);
    });
  });
});
