import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { connect as natsConnect, type NatsConnection } from 'nats';
import type { ExpiredLeave, PresenceSnapshot, PresenceStore } from '../../src/presence/presence-store.js';
import { MemoryPresence } from '../../src/presence/memory-presence.js';
import { RedisPresence } from '../../src/presence/redis-presence.js';
import { NatsPresence } from '../../src/presence/nats-presence.js';
import { prng } from '../helpers/prng.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const NATS_URL = 'nats://127.0.0.1:4222';
const TTL_S = 15;

const unique = (): string => randomBytes(5).toString('hex');

/** A clock the test moves: TTLs pass without sleeping. */
class Clock {
  t = Date.now();
  readonly now = (): number => this.t;
  advance(seconds: number): void {
    this.t += seconds * 1000;
  }
}

interface Nodes {
  /** Two stores on one backend, as two nodes see it (memory: one store twice). */
  readonly a: PresenceStore;
  readonly b: PresenceStore;
  close(): Promise<void>;
}

interface Backend {
  readonly name: string;
  readonly shared: boolean;
  make(clock: Clock): Promise<Nodes>;
}

const backends: Backend[] = [
  {
    name: 'memory',
    shared: false,
    async make(clock) {
      const store = new MemoryPresence(TTL_S, clock.now);
      return { a: store, b: store, async close() {} };
    },
  },
  {
    name: 'redis',
    shared: true,
    async make(clock) {
      const prefix = `test:${unique()}`;
      const clients = [new Redis(REDIS_URL), new Redis(REDIS_URL)];
      const [a, b] = clients.map((c) => new RedisPresence(c, prefix, TTL_S, clock.now));
      return {
        a: a as RedisPresence,
        b: b as RedisPresence,
        async close() {
          const keys = await clients[0]?.keys(`${prefix}:*`) ?? [];
          if (keys.length > 0) await clients[0]?.del(...keys);
          for (const c of clients) c.disconnect();
        },
      };
    },
  },
  {
    name: 'nats',
    shared: true,
    async make(clock) {
      const bucket = `t_presence_${unique()}`;
      const connections: NatsConnection[] = [await natsConnect({ servers: NATS_URL }), await natsConnect({ servers: NATS_URL })];
      const stores = connections.map(() => new NatsPresence(bucket, TTL_S, clock.now));
      for (const [i, store] of stores.entries()) {
        const connection = connections[i];
        if (connection) await store.attach(connection);
      }
      return {
        a: stores[0] as NatsPresence,
        b: stores[1] as NatsPresence,
        async close() {
          const jsm = await connections[0]?.jetstreamManager();
          await jsm?.streams.delete(`KV_${bucket}`).catch(() => undefined);
          for (const c of connections) await c.close();
        },
      };
    },
  },
];

/** Members as id → info, for order-free comparison (Redis and NATS do not keep join order). */
function members(snapshot: PresenceSnapshot): Record<string, string> {
  assert.equal(snapshot.total, snapshot.records.length);
  const out: Record<string, string> = {};
  for (const r of snapshot.records) out[r.id] = r.info;
  return out;
}

function sorted(leaves: readonly ExpiredLeave[]): ExpiredLeave[] {
  return [...leaves].sort((x, y) => (x.stream + x.id).localeCompare(y.stream + y.id));
}


for (const backend of backends) {
  describe(`${backend.name} presence store`, () => {
    const clock = new Clock();
    let nodes: Nodes;
    before(async () => { nodes = await backend.make(clock); });
    after(async () => { await nodes.close(); });

    test('a new pid joins; a second session of it does not join again; it counts once', async () => {
      const { a, b } = nodes;
      const stream = `chat ${unique()}`;
      assert.deepEqual(await a.join(stream, 's1', 'u1', '{"name":"Ann"}'), { ok: true, joined: true });
      assert.deepEqual(await b.join(stream, 's2', 'u1', '{"name":"Ann B"}'), { ok: true, joined: false });
      assert.deepEqual(await b.join(stream, 's3', 'u2', ''), { ok: true, joined: true });
      // The latest info of a pid wins; a member without info has ''.
      assert.deepEqual(members(await a.info(stream)), { u1: '{"name":"Ann B"}', u2: '' });
      assert.deepEqual(members(await b.info(stream)), { u1: '{"name":"Ann B"}', u2: '' });
    });

    test('the pid leaves only with its last session', async () => {
      const { a, b } = nodes;
      const stream = `s.${unique()}`;
      await a.join(stream, 's1', 'u1', '1');
      await b.join(stream, 's2', 'u1', '1');
      assert.equal(await a.leave(stream, 's1'), null);
      assert.deepEqual(members(await a.info(stream)), { u1: '1' });
      assert.equal(await b.leave(stream, 's2'), 'u1');
      assert.deepEqual(await a.info(stream), { total: 0, records: [] });
      assert.equal(await b.leave(stream, 's2'), null, 'a second leave is a no-op');
      assert.equal(await a.leave(`never-${unique()}`, 's9'), null);
    });

    test('a session keeps one pid per stream; rejoining with it refreshes', async () => {
      const { a } = nodes;
      const stream = `s-${unique()}`;
      await a.join(stream, 's1', 'u1', '"x"');
      assert.deepEqual(await a.join(stream, 's1', 'u2', '"y"'), { ok: false, error: 'id_mismatch' });
      assert.deepEqual(await a.join(stream, 's1', 'u1', '"z"'), { ok: true, joined: false });
      assert.deepEqual(members(await a.info(stream)), { u1: '"z"' });
      // The same session may be someone else on another stream.
      assert.deepEqual(await a.join(`${stream}-2`, 's1', 'u2', '1'), { ok: true, joined: true });
      assert.equal(await a.leave(stream, 's1'), 'u1');
      assert.equal(await a.leave(`${stream}-2`, 's1'), 'u2');
    });

    test('untouched presences expire after the TTL; touched ones stay; each leave is reported once', async () => {
      const { a, b } = nodes;
      const stream = `s-${unique()}`;
      await a.join(stream, 'gone', 'u-gone', '1');
      await b.join(stream, 'live', 'u-live', '2');
      await a.join(stream, 'twin-a', 'u-twin', '3');
      await b.join(stream, 'twin-b', 'u-twin', '3');
      clock.advance(TTL_S - 1);
      assert.deepEqual([...await a.expire(), ...await b.expire()], [], 'nothing before the TTL');
      await b.touch([{ stream, sid: 'live' }, { stream, sid: 'twin-b' }]);
      clock.advance(2);
      // Both nodes sweep at once: each expired presence is handled by exactly one of them.
      const [fromA, fromB] = await Promise.all([a.expire(), b.expire()]);
      assert.deepEqual(sorted([...fromA, ...fromB]).filter((l) => l.stream === stream), [{ stream, id: 'u-gone' }]);
      assert.deepEqual(members(await a.info(stream)), { 'u-live': '2', 'u-twin': '3' });
      clock.advance(TTL_S);
      const later = [...await a.expire(), ...await b.expire()].filter((l) => l.stream === stream);
      assert.deepEqual(sorted(later), [{ stream, id: 'u-live' }, { stream, id: 'u-twin' }]);
      assert.deepEqual(await b.info(stream), { total: 0, records: [] });
    });

    test('a client that comes back under a new session before the TTL never leaves', async () => {
      const { a, b } = nodes;
      const stream = `s-${unique()}`;
      await a.join(stream, 'old-sid', 'u1', '{"v":1}');
      clock.advance(TTL_S / 2);
      // The old session closed (no more touches); the restored one joins again, possibly on another node.
      assert.deepEqual(await b.join(stream, 'new-sid', 'u1', '{"v":1}'), { ok: true, joined: false });
      clock.advance(TTL_S / 2 + 1);
      assert.deepEqual([...await a.expire(), ...await b.expire()].filter((l) => l.stream === stream), []);
      assert.deepEqual(members(await a.info(stream)), { u1: '{"v":1}' });
      assert.equal(await b.leave(stream, 'new-sid'), 'u1');
    });

    test('touching an expired or unknown presence does not bring it back', async () => {
      const { a } = nodes;
      const stream = `s-${unique()}`;
      await a.join(stream, 's1', 'u1', '1');
      clock.advance(TTL_S + 1);
      assert.deepEqual((await a.expire()).filter((l) => l.stream === stream), [{ stream, id: 'u1' }]);
      await a.touch([{ stream, sid: 's1' }, { stream, sid: 'nobody' }]);
      assert.deepEqual(await a.info(stream), { total: 0, records: [] });
    });

    test('stream names and ids with any characters', async () => {
      const { a, b } = nodes;
      for (const stream of ['a.b.c', 'with space', 'quote"s\\', 'ünï * > ✓', `${unique()}:x`]) {
        assert.deepEqual(await a.join(stream, 'sid.1', 'id "1".*', '{"k":"v"}'), { ok: true, joined: true }, stream);
        assert.deepEqual(members(await b.info(stream)), { 'id "1".*': '{"k":"v"}' }, stream);
        assert.equal(await a.leave(stream, 'sid.1'), 'id "1".*', stream);
      }
    });

    test('seeded random interleavings agree with a model', async () => {
      const seeds = backend.name === 'nats' ? [7] : [1, 2, 3];
      for (const seed of seeds) {
        const random = prng(seed);
        const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
        const stream = `model-${seed}-${unique()}`;
        const sids = ['s1', 's2', 's3', 's4', 's5'];
        const pids = ['p1', 'p2', 'p3'];
        // The model: sid → {pid, node, expires} of present sessions.
        const model = new Map<string, { pid: string; node: 'a' | 'b'; expires: number }>();
        const events: string[] = [];
        const expected: string[] = [];
        const live = (pid: string): boolean => [...model.values()].some((m) => m.pid === pid);
        const steps = backend.name === 'nats' ? 40 : 120;
        for (let step = 0; step < steps; step++) {
          const roll = random();
          const sid = pick(sids);
          const current = model.get(sid);
          // A session lives on one node: the node that joined it handles it afterwards.
          const nodeName = current?.node ?? (random() < 0.5 ? 'a' : 'b');
          const node = nodeName === 'a' ? nodes.a : nodes.b;
          if (roll < 0.4) {
            const pid = current?.pid ?? pick(pids);
            const wasLive = live(pid);
            const outcome = await node.join(stream, sid, pid, JSON.stringify(step));
            model.set(sid, { pid, node: nodeName, expires: clock.t + TTL_S * 1000 });
            if (!wasLive) expected.push(`join ${pid}`);
            if (outcome.ok && outcome.joined) events.push(`join ${pid}`);
          } else if (roll < 0.6) {
            const left = await node.leave(stream, sid);
            if (left) events.push(`leave ${left}`);
            if (current) {
              model.delete(sid);
              if (!live(current.pid)) expected.push(`leave ${current.pid}`);
            }
          } else if (roll < 0.75) {
            await node.touch([{ stream, sid }]);
            if (current) current.expires = clock.t + TTL_S * 1000;
          } else {
            // Time passes, then the nodes sweep (as their 1 s tick does): a presence is never
            // unswept for long, so NATS's orphan rule (a TTL past expiry) never applies here.
            if (roll < 0.9) clock.advance(random() * TTL_S * 0.7);
            // Leaves of one sweep come in no particular order.
            const swept = [...await nodes.a.expire(), ...await nodes.b.expire()].filter((l) => l.stream === stream);
            events.push(...swept.map((l) => `leave ${l.id}`).sort());
            const before = new Set([...model.values()].map((m) => m.pid));
            for (const [s, m] of model) if (m.expires <= clock.t) model.delete(s);
            expected.push(...[...before].filter((pid) => !live(pid)).map((pid) => `leave ${pid}`).sort());
          }
          assert.deepEqual(events, expected, `seed ${seed}, step ${step}`);
        }
        const present = new Set([...model.values()].map((m) => m.pid));
        assert.deepEqual(Object.keys(members(await nodes.a.info(stream))).sort(), [...present].sort(), `seed ${seed}`);
        for (const [sid, m] of model) await (m.node === 'a' ? nodes.a : nodes.b).leave(stream, sid);
      }
    });
  });
}

describe('nats presence bucket', () => {
  test('an existing bucket whose max age is shorter than the store needs is raised', async () => {
    const bucket = `t_presence_${unique()}`;
    const connection = await natsConnect({ servers: NATS_URL });
    try {
      const short = await connection.jetstream().views.kv(bucket, { history: 1, ttl: 2000 });
      assert.equal((await short.status()).ttl, 2000);
      await new NatsPresence(bucket, TTL_S).attach(connection);
      assert.equal((await short.status()).ttl, TTL_S * 4 * 1000);
    } finally {
      const jsm = await connection.jetstreamManager();
      await jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
      await connection.close();
    }
  });
});
