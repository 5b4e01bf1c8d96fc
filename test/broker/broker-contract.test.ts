import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { connect as natsConnect } from 'nats';
import { Metrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/logging/logger.js';
import { LogCapture } from '../helpers/server.js';
import type { Broker, BrokerOptions, HistoryRead, StreamPosition } from '../../src/broker/broker.js';
import { MemoryBroker } from '../../src/broker/memory-broker.js';
import { RedisBroker } from '../../src/broker/redis-broker.js';
import { NatsBroker, type NatsBrokerNames } from '../../src/broker/nats-broker.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitUntil } from '../helpers/wait.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const NATS_URL = 'nats://127.0.0.1:4222';
const OPTS: BrokerOptions = { historyLimit: 3, historyTtlS: 300, sessionsTtlS: 300 };
const logger = createLogger({ level: 'warn', format: 'json', destination: new LogCapture() });

const unique = (): string => randomBytes(5).toString('hex');

function entries(read: HistoryRead): Array<[number, string]> {
  assert.ok(read.ok, `expected history, got ${read.ok ? '' : read.miss}`);
  return read.entries.map((e) => [e.offset, e.data]);
}

function miss(read: HistoryRead): string {
  assert.ok(!read.ok, 'expected a miss');
  return read.miss;
}

interface Backend {
  readonly name: string;
  /** Two brokers on the same backend (two nodes), or one twice for memory. */
  make(opts: BrokerOptions): Promise<[Broker, Broker]>;
  cleanup(): Promise<void>;
}

const natsNames = (): NatsBrokerNames => {
  const id = unique();
  return { historyStream: `T_HISTORY_${id}`, subjectPrefix: `t.${id}.history`, sessionsBucket: `t_sessions_${id}`, presenceBucket: `t_presence_${id}` };
};
const natsCreated: NatsBrokerNames[] = [];

const backends: Backend[] = [
  {
    name: 'memory',
    async make(opts) {
      const b = new MemoryBroker(opts);
      await b.start();
      return [b, b];
    },
    async cleanup() {},
  },
  {
    name: 'redis',
    async make(opts) {
      const prefix = `test:${unique()}`;
      const pair: [Broker, Broker] = [new RedisBroker(REDIS_URL, opts, new Metrics(), logger, prefix), new RedisBroker(REDIS_URL, opts, new Metrics(), logger, prefix)];
      for (const b of pair) await b.start();
      await waitUntil(() => pair.every((b) => b.isReady()), 'both Redis brokers are ready');
      return pair;
    },
    async cleanup() {},
  },
  {
    name: 'nats',
    async make(opts) {
      const names = natsNames();
      natsCreated.push(names);
      const pair: [Broker, Broker] = [new NatsBroker([NATS_URL], opts, new Metrics(), logger, names), new NatsBroker([NATS_URL], opts, new Metrics(), logger, names)];
      for (const b of pair) await b.start();
      await waitUntil(() => pair.every((b) => b.isReady()), 'both NATS brokers are ready');
      return pair;
    },
    async cleanup() {
      const nc = await natsConnect({ servers: NATS_URL });
      const jsm = await nc.jetstreamManager();
      for (const names of natsCreated.splice(0)) {
        await jsm.streams.delete(names.historyStream).catch(() => undefined);
        await jsm.streams.delete(`KV_${names.sessionsBucket}`).catch(() => undefined);
        await jsm.streams.delete(`KV_${names.presenceBucket}`).catch(() => undefined);
      }
      await nc.close();
    },
  },
];

for (const backend of backends) {
  describe(`${backend.name} broker`, () => {
    let a: Broker;
    let b: Broker;
    before(async () => { [a, b] = await backend.make(OPTS); });
    after(async () => {
      await a.shutdown();
      if (b !== a) await b.shutdown();
      await backend.cleanup();
    });

    test('appends get increasing offsets within one epoch, in call order', async () => {
      const stream = `s-${unique()}`;
      const positions = await Promise.all(['a', 'b', 'c'].map((d) => a.history.append(stream, d)));
      assert.equal(new Set(positions.map((p) => p.epoch)).size, 1);
      const offsets = positions.map((p) => p.offset);
      assert.deepEqual([...offsets].sort((x, y) => x - y), offsets);
      assert.equal(new Set(offsets).size, 3);
    });

    test('reads after a position return the later messages in order, on any node', async () => {
      const stream = `s-${unique()}`;
      const p1 = await a.history.append(stream, '{"n":1}');
      const p2 = await a.history.append(stream, '{"n":2}');
      const p3 = await a.history.append(stream, '"three"');
      assert.deepEqual(entries(await b.history.readFrom(stream, p1)), [[p2.offset, '{"n":2}'], [p3.offset, '"three"']]);
      const read = await b.history.readFrom(stream, p1);
      assert.ok(read.ok && read.entries.every((e) => e.epoch === p1.epoch));
      assert.deepEqual(entries(await b.history.readFrom(stream, p3)), []);
    });

    test('a position the stream never reached, or another epoch, is a miss', async () => {
      const stream = `s-${unique()}`;
      const p = await a.history.append(stream, '1');
      assert.equal(miss(await b.history.readFrom(stream, { epoch: p.epoch, offset: p.offset + 1000 })), 'offset_ahead');
      assert.equal(miss(await b.history.readFrom(stream, { epoch: 'nope', offset: p.offset })), 'unknown_epoch');
      // One epoch per stream store: memory and Redis know none for a new stream, NATS's spans all streams.
      const unseen = miss(await b.history.readFrom(`never-${unique()}`, { epoch: p.epoch, offset: 1 }));
      assert.equal(unseen, backend.name === 'nats' ? 'evicted' : 'unknown_epoch');
    });

    test('past the history limit older positions are evicted, recent ones still served', async () => {
      const stream = `s-${unique()}`;
      const positions: StreamPosition[] = [];
      for (let i = 1; i <= 5; i++) positions.push(await a.history.append(stream, String(i)));
      const [p1, , p3, p4, p5] = positions as [StreamPosition, StreamPosition, StreamPosition, StreamPosition, StreamPosition];
      assert.equal(miss(await b.history.readFrom(stream, p1)), 'evicted');
      assert.deepEqual(entries(await b.history.readFrom(stream, p3)), [[p4.offset, '4'], [p5.offset, '5']]);
      assert.deepEqual(entries(await b.history.readSince(stream, 0)).map(([, d]) => d), ['3', '4', '5']);
    });

    test('reads since a time return what was stored from then on; unknown streams have none', async () => {
      const stream = `s-${unique()}`;
      await a.history.append(stream, 'x');
      await a.history.append(stream, 'y');
      const nowS = Math.floor(Date.now() / 1000);
      assert.deepEqual(entries(await b.history.readSince(stream, nowS - 5)).map(([, d]) => d), ['x', 'y']);
      assert.deepEqual(entries(await b.history.readSince(stream, nowS + 5)), []);
      assert.deepEqual(entries(await b.history.readSince(`never-${unique()}`, 0)), []);
    });

    test('different streams keep separate histories', async () => {
      const [s1, s2] = [`s-${unique()}`, `s-${unique()}`];
      const p = await a.history.append(s1, 'one');
      await a.history.append(s2, 'two');
      await a.history.append(s1, 'three');
      assert.deepEqual(entries(await b.history.readFrom(s1, p)).map(([, d]) => d), ['three']);
      assert.deepEqual(entries(await b.history.readSince(s2, 0)).map(([, d]) => d), ['two']);
    });

    test('session snapshots are committed on one node and fetched on another; unknown sids miss', async () => {
      const sid = `sid-${unique()}`;
      await a.sessions.commit(sid, '{"ids":"x"}');
      assert.equal(await b.sessions.fetch(sid), '{"ids":"x"}');
      await a.sessions.commit(sid, '{"ids":"y"}');
      assert.equal(await b.sessions.fetch(sid), '{"ids":"y"}');
      assert.equal(await b.sessions.fetch(`missing-${unique()}`), null);
      assert.equal(await b.sessions.fetch('bad sid with spaces*>'), null);
    });
  });
}

describe('memory broker with a test clock', () => {
  test('messages expire after the history TTL; a quiet stream store is forgotten and restarts under a new epoch', async () => {
    let now = 1_000_000;
    const broker = new MemoryBroker({ historyLimit: 10, historyTtlS: 10, sessionsTtlS: 10 }, () => now);
    const p1 = broker.history.append('s', 'a');
    now += 6_000;
    const p2 = broker.history.append('s', 'b');
    now += 5_000;
    broker.history.sweep();
    assert.equal(miss(await broker.history.readFrom('s', { epoch: p1.epoch, offset: 0 })), 'evicted', 'a expired: a read from before it must fail');
    assert.deepEqual(entries(await broker.history.readFrom('s', p1)).map(([, d]) => d), ['b'], 'whoever had a misses only b, still kept');
    assert.deepEqual(entries(await broker.history.readSince('s', 0)).map(([, d]) => d), ['b']);
    assert.deepEqual(entries(await broker.history.readFrom('s', p2)), []);
    now += 100_000;
    broker.history.sweep();
    assert.equal(broker.history.streamCount, 0);
    const p3 = broker.history.append('s', 'c');
    assert.notEqual(p3.epoch, p1.epoch);
    assert.equal(p3.offset, 1);
    assert.equal(miss(await broker.history.readFrom('s', p2)), 'unknown_epoch');
  });

  test('sessions expire sessions_ttl after their last commit; ttl 0 keeps none', async () => {
    let now = 0;
    const broker = new MemoryBroker({ historyLimit: 10, historyTtlS: 10, sessionsTtlS: 10 }, () => now);
    await broker.sessions.commit('a', 'A');
    now += 9_000;
    await broker.sessions.commit('b', 'B');
    now += 2_000;
    assert.equal(await broker.sessions.fetch('a'), null);
    assert.equal(await broker.sessions.fetch('b'), 'B');
    broker.sessions.sweep();
    assert.equal(broker.sessions.size, 1);
    const off = new MemoryBroker({ historyLimit: 10, historyTtlS: 10, sessionsTtlS: 0 });
    await off.sessions.commit('a', 'A');
    assert.equal(await off.sessions.fetch('a'), null);
  });
});

describe('redis broker specifics', () => {
  test('messages older than the TTL are not served; a lost stream store gets a new epoch', async () => {
    let now = Date.now();
    const prefix = `test:${unique()}`;
    const broker = new RedisBroker(REDIS_URL, { historyLimit: 10, historyTtlS: 10, sessionsTtlS: 10 }, new Metrics(), logger, prefix, () => now);
    await broker.start();
    try {
      const p1 = await broker.history.append('s', 'a');
      now += 6_000;
      const p2 = await broker.history.append('s', 'b');
      now += 5_000;
      assert.equal(miss(await broker.history.readFrom('s', { epoch: p1.epoch, offset: 0 })), 'evicted');
      assert.deepEqual(entries(await broker.history.readFrom('s', p1)).map(([, d]) => d), ['b']);
      const redis = new Redis(REDIS_URL);
      await redis.del(`${prefix}:meta:s`);
      await redis.quit();
      const p3 = await broker.history.append('s', 'c');
      assert.notEqual(p3.epoch, p1.epoch);
      assert.equal(p3.offset, 1);
      assert.equal(miss(await broker.history.readFrom('s', p2)), 'unknown_epoch');
      assert.deepEqual(entries(await broker.history.readSince('s', 0)).map(([, d]) => d), ['c']);
    } finally {
      await broker.shutdown();
      const redis = new Redis(REDIS_URL);
      await redis.del(`${prefix}:meta:s`, `${prefix}:history:s`);
      await redis.quit();
    }
  });

  test('a cut connection makes the broker not ready; appends made meanwhile are kept and answered after it recovers', async () => {
    const proxy = new TcpProxy(6379);
    const port = await proxy.start();
    const broker = new RedisBroker(`redis://127.0.0.1:${port}`, OPTS, new Metrics(), logger, `test:${unique()}`);
    await broker.start();
    try {
      await waitUntil(() => broker.isReady(), 'the broker is ready');
      const before = await broker.history.append('s', 'before');
      await proxy.stop();
      await waitUntil(() => !broker.isReady(), 'the broker is not ready');
      assert.equal(miss(await broker.history.readFrom('s', before)), 'unavailable');
      assert.equal(await broker.sessions.fetch('anything'), null);
      const held = broker.history.append('s', 'during');
      await proxy.start(port);
      const during = await held;
      assert.equal(during.epoch, before.epoch);
      assert.equal(during.offset, before.offset + 1);
      await waitUntil(() => broker.isReady(), 'the broker is ready again');
      assert.deepEqual(entries(await broker.history.readFrom('s', before)).map(([, d]) => d), ['during']);
    } finally {
      await broker.shutdown();
      await proxy.stop();
    }
  });
});

describe('nats broker specifics', () => {
  test('a lost JetStream stream is made again under a new epoch; a lost sessions bucket is made again', async () => {
    const names = natsNames();
    const broker = new NatsBroker([NATS_URL], OPTS, new Metrics(), logger, names);
    await broker.start();
    const nc = await natsConnect({ servers: NATS_URL });
    try {
      await waitUntil(() => broker.isReady(), 'the NATS broker is ready');
      const p1 = await broker.history.append('s', 'a');
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(names.historyStream);
      const p2 = await broker.history.append('s', 'b');
      assert.notEqual(p2.epoch, p1.epoch);
      assert.equal(miss(await broker.history.readFrom('s', p1)), 'unknown_epoch');
      assert.deepEqual(entries(await broker.history.readSince('s', 0)).map(([, d]) => d), ['b']);
      // The sessions bucket lost too: the next commit makes it again.
      await jsm.streams.delete(`KV_${names.sessionsBucket}`);
      await broker.sessions.commit('sid-after-loss', 'S');
      assert.equal(await broker.sessions.fetch('sid-after-loss'), 'S');
    } finally {
      await broker.shutdown();
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(names.historyStream).catch(() => undefined);
      await jsm.streams.delete(`KV_${names.sessionsBucket}`).catch(() => undefined);
      await jsm.streams.delete(`KV_${names.presenceBucket}`).catch(() => undefined);
      await nc.close();
    }
  });
});
