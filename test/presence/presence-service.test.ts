import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { PresenceService, type PresenceSession } from '../../src/presence/presence-service.js';
import { MemoryPresence } from '../../src/presence/memory-presence.js';
import type { PresenceStore } from '../../src/presence/presence-store.js';
import type { StreamBroadcast } from '../../src/broadcast/message.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/logging/logger.js';
import { LogCapture } from '../helpers/server.js';
import type { SessionState } from '../../src/node/session.js';
import { prng } from '../helpers/prng.js';

const TTL_S = 15;
const logger = createLogger({ level: 'warn', format: 'json', destination: new LogCapture() });

class FakeSession implements PresenceSession {
  state: SessionState = 'open';
  readonly frames: string[] = [];
  constructor(readonly sid: string, private readonly subscriptions: ReadonlyMap<string, string>) {}
  subscription(identifier: string): { istate: Record<string, string> } | undefined {
    const stream = this.subscriptions.get(identifier);
    return stream === undefined ? undefined : { istate: { $p: stream } };
  }
  send(frame: string): boolean {
    this.frames.push(frame);
    return this.state === 'open';
  }
}

/** Each call reaches the store at once (a Redis connection keeps call order) but answers after `delay()` turns. */
function laggy(store: PresenceStore, delay: () => number): PresenceStore {
  const later = async <T>(value: Promise<T>): Promise<T> => {
    const result = await value;
    for (let i = delay(); i > 0; i--) await new Promise((r) => setImmediate(r));
    return result;
  };
  return {
    join: (...args) => later(store.join(...args)),
    leave: (...args) => later(store.leave(...args)),
    info: (...args) => later(store.info(...args)),
    touch: (...args) => later(store.touch(...args)),
    expire: () => later(store.expire()),
  };
}


function setup(delay: () => number = () => 0): { service: PresenceService; events: string[]; clock: { t: number } } {
  const clock = { t: Date.now() };
  const store = laggy(new MemoryPresence(TTL_S, () => clock.t), delay);
  const events: string[] = [];
  const publish = (pub: StreamBroadcast): void => {
    assert.equal(pub.presence, true);
    assert.equal(pub.transient, true);
    const event = JSON.parse(pub.data) as { type: string; id: string };
    events.push(`${pub.stream} ${event.type} ${event.id}`);
  };
  return { service: new PresenceService(store, { ttlS: TTL_S }, publish, new Metrics(), logger), events, clock };
}

describe('presence service', () => {
  test('a store call that fails at once while an earlier one is pending is answered in turn, never an unhandled rejection', async () => {
    let releaseSlow: () => void = () => undefined;
    const memory = new MemoryPresence(TTL_S);
    const store: PresenceStore = {
      ...laggy(memory, () => 0),
      join: async (stream, ...rest) => {
        if (stream !== 'slow') throw new Error('store down');
        await new Promise<void>((r) => { releaseSlow = r; });
        return memory.join(stream, ...rest);
      },
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => { unhandled.push(reason); };
    process.on('unhandledRejection', onUnhandled);
    try {
      const service = new PresenceService(store, { ttlS: TTL_S }, () => undefined, new Metrics(), logger);
      const slow = service.join(new FakeSession('a', new Map([['id', 'slow']])), 'id', { id: '1', info: '' });
      const failing = service.join(new FakeSession('b', new Map([['id', 'fast']])), 'id', { id: '2', info: '' });
      await new Promise((r) => setTimeout(r, 50));
      releaseSlow();
      await slow;
      await failing;
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('a session that closes while its join is in flight is not kept: it leaves after the TTL', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => { release = r; });
    const clock = { t: Date.now() };
    const memory = new MemoryPresence(TTL_S, () => clock.t);
    const store: PresenceStore = { ...laggy(memory, () => 0), join: async (...args) => { const outcome = await memory.join(...args); await gate; return outcome; } };
    const events: string[] = [];
    const service = new PresenceService(store, { ttlS: TTL_S }, (pub) => events.push(pub.data), new Metrics(), logger);
    const session = new FakeSession('s1', new Map([['id', 'room']]));
    const joining = service.join(session, 'id', { id: 'u1', info: '' });
    session.state = 'closing';
    service.sessionClosed('s1');
    release();
    await joining;
    assert.equal(service.liveCount, 0, 'not refreshed any more');
    assert.deepEqual(events, ['{"type":"join","id":"u1"}']);
    clock.t += (TTL_S + 1) * 1000;
    await service.sweep();
    assert.deepEqual(events, ['{"type":"join","id":"u1"}', '{"type":"leave","id":"u1"}']);
  });

  test('refresh keeps live sessions past the TTL; a closed one leaves', async () => {
    const { service, events, clock } = setup();
    const live = new FakeSession('live', new Map([['id', 'room']]));
    const gone = new FakeSession('gone', new Map([['id', 'room']]));
    await service.join(live, 'id', { id: 'u-live', info: '' });
    await service.join(gone, 'id', { id: 'u-gone', info: '' });
    gone.state = 'closing';
    service.sessionClosed('gone');
    for (let i = 0; i < 4; i++) {
      clock.t += (TTL_S / 2) * 1000;
      await service.refresh();
      await service.sweep();
    }
    assert.deepEqual(events, ['room join u-live', 'room join u-gone', 'room leave u-gone']);
    assert.equal(service.liveCount, 1);
  });

  for (const seed of [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]) {
    test(`seeded interleaving ${seed}: joins, leaves, unsubscribes and closes racing slow store answers end with every join left`, async () => {
      const random = prng(seed);
      const { service, events, clock } = setup(() => Math.floor(random() * 4));
      const streams = ['a', 'b'];
      const sessions = Array.from({ length: 6 }, (_, i) => new FakeSession(`s${i}`, new Map([['id-a', 'a'], ['id-b', 'b']])));
      const pids = ['p1', 'p2', 'p3'];
      // Each session runs its commands one after another (its queue); sessions run concurrently.
      const ownPid = new Map<string, string>();
      await Promise.all(sessions.map(async (session) => {
        for (let step = 0; step < 30 && session.state === 'open'; step++) {
          const roll = random();
          const identifier = random() < 0.5 ? 'id-a' : 'id-b';
          if (roll < 0.45) {
            const key = `${session.sid}/${identifier}`;
            const pid = ownPid.get(key) ?? pids[Math.floor(random() * pids.length)] ?? 'p1';
            ownPid.set(key, pid);
            await service.join(session, identifier, { id: pid, info: String(step) });
          } else if (roll < 0.65) {
            await service.leave(session, identifier);
          } else if (roll < 0.8) {
            await service.unsubscribed(session, identifier);
          } else if (roll < 0.95) {
            clock.t += random() * 3000;
            await service.sweep();
          } else {
            session.state = 'closing';
            service.sessionClosed(session.sid);
          }
        }
        session.state = 'closing';
        service.sessionClosed(session.sid);
      }));
      assert.equal(service.liveCount, 0);
      clock.t += (TTL_S + 1) * 1000;
      await service.sweep();
      // Per stream and pid, events alternate join/leave, starting with a join and ending with a leave.
      for (const stream of streams) {
        for (const pid of pids) {
          const mine = events.filter((e) => e.startsWith(`${stream} `) && e.endsWith(` ${pid}`)).map((e) => e.split(' ')[1]);
          mine.forEach((type, i) => assert.equal(type, i % 2 === 0 ? 'join' : 'leave', `${stream}/${pid}: ${mine.join(',')}`));
          assert.equal(mine.length % 2, 0, `${stream}/${pid} ends present: ${mine.join(',')}`);
        }
      }
      assert.ok(events.length > 0);
    });
  }
});
