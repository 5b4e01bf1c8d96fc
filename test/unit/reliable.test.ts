import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/logging/logger.js';
import { LogCapture } from '../helpers/server.js';
import type { HistoryRead, HistoryStore, StreamPosition } from '../../src/broker/broker.js';
import { MemoryBroker } from '../../src/broker/memory-broker.js';
import type { Publication, StreamBroadcast } from '../../src/broadcast/message.js';
import { encodePublication, parsePublicationsText } from '../../src/broadcast/message.js';
import { BroadcastSequencer } from '../../src/reliable/broadcast-sequencer.js';
import { CatchUp, type TopicGate } from '../../src/reliable/catch-up.js';
import { HistoryServer, type HistoryClient } from '../../src/reliable/history-server.js';
import { parseHistoryRequest } from '../../src/reliable/history-request.js';
import { decodeSnapshot, encodeSnapshot, type SessionSnapshot } from '../../src/reliable/session-snapshot.js';
import { parsePingPrecision, pingTimestamp, positionedMessageFrame } from '../../src/protocol/ext-frames.js';
import type { TopicSocket } from '../../src/hub/hub.js';

const logger = createLogger({ level: 'warn', format: 'json', destination: new LogCapture() });
const bc = (stream: string, data: string, extra: Partial<StreamBroadcast> = {}): StreamBroadcast => ({ kind: 'broadcast', stream, data, excludeSocket: null, ...extra });

/** A history store whose appends resolve when the test says so, in any order. */
class ManualHistory implements HistoryStore {
  readonly calls: Array<{ stream: string; resolve: (p: StreamPosition) => void; reject: (e: Error) => void }> = [];
  append(stream: string): Promise<StreamPosition> {
    return new Promise((resolve, reject) => this.calls.push({ stream, resolve, reject }));
  }
  async readFrom(): Promise<HistoryRead> { return { ok: true, entries: [] }; }
  async readSince(): Promise<HistoryRead> { return { ok: true, entries: [] }; }
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('broadcast sequencer', () => {
  test('the memory store positions broadcasts synchronously', () => {
    const broker = new MemoryBroker({ historyLimit: 10, historyTtlS: 10, sessionsTtlS: 0 });
    const out: StreamBroadcast[] = [];
    const seq = new BroadcastSequencer(broker.history, new Metrics(), logger);
    const emit = (p: Publication): number => (p.kind === 'broadcast' ? out.push(p) : 0);
    seq.accept(bc('s', '1'), emit);
    seq.accept(bc('s', '2'), emit);
    assert.deepEqual(out.map((p) => [p.data, p.position?.offset]), [['1', 1], ['2', 2]]);
  });

  test('asynchronous appends answered out of order still go out in arrival order; a failed one goes without position', async () => {
    const history = new ManualHistory();
    const out: StreamBroadcast[] = [];
    const seq = new BroadcastSequencer(history, new Metrics(), logger);
    const commands: string[] = [];
    const emit = (p: Publication): void => {
      if (p.kind === 'broadcast') out.push(p);
      else commands.push(`after ${out.length}`);
    };
    seq.accept(bc('a', '1'), emit);
    seq.accept(bc('b', '2'), emit);
    seq.accept({ kind: 'disconnect', identifier: '{"u":1}', reconnect: true }, emit);
    seq.accept(bc('a', 'whisper', { transient: true }), emit);
    seq.accept(bc('a', '3'), emit);
    history.calls[2]!.resolve({ epoch: 'e', offset: 2 });
    history.calls[1]!.reject(new Error('down'));
    await flush();
    assert.equal(out.length, 0, 'nothing overtakes the first one');
    history.calls[0]!.resolve({ epoch: 'e', offset: 1 });
    await seq.drain();
    assert.deepEqual(out.map((p) => [p.data, p.position ?? null]), [
      ['1', { epoch: 'e', offset: 1 }], ['2', null], ['whisper', null], ['3', { epoch: 'e', offset: 2 }],
    ]);
    assert.equal(history.calls.length, 3, 'transient broadcasts are not stored');
    assert.deepEqual(commands, ['after 2'], 'a remote disconnect keeps its place');
  });
});

describe('publications between nodes', () => {
  test('positions and transient travel between our nodes; the app cannot set positions', () => {
    const wire = encodePublication(bc('s', '{"a":1}', { position: { epoch: 'E', offset: 7 }, transient: true, excludeSocket: 'sid' }));
    const trusted = parsePublicationsText(wire, true);
    assert.ok(trusted.ok);
    assert.deepEqual(trusted.items[0], { kind: 'broadcast', stream: 's', data: '{"a":1}', excludeSocket: 'sid', transient: true, position: { epoch: 'E', offset: 7 } });
    const fromApp = parsePublicationsText(wire);
    assert.ok(fromApp.ok && fromApp.items[0]?.kind === 'broadcast' && fromApp.items[0].position === undefined);
  });
});

describe('history requests, snapshots and frames', () => {
  test('history requests keep valid positions and a valid since only', () => {
    const req = parseHistoryRequest({ since: 1700000000.7, streams: { a: { epoch: 'e', offset: 3 }, b: { epoch: '', offset: 1 }, c: { epoch: 'e', offset: -1 }, d: 'x' } });
    assert.deepEqual(req, { since: 1700000000, streams: new Map([['a', { epoch: 'e', offset: 3 }]]) });
    assert.deepEqual(parseHistoryRequest({ since: 'yesterday' }), { since: null, streams: new Map() });
    assert.equal(parseHistoryRequest('nope'), null);
    assert.equal(parseHistoryRequest(null), null);
  });

  test('session snapshots round-trip; anything else decodes to null', () => {
    const snapshot: SessionSnapshot = {
      identifiers: '{"user":1}', cstate: { k: 'v' }, usedRpc: true,
      subscriptions: [{ identifier: '{"channel":"A"}', istate: { s: '1' }, streams: ['x', 'y'] }],
    };
    assert.deepEqual(decodeSnapshot(encodeSnapshot(snapshot)), snapshot);
    for (const bad of ['', '{', '{"v":2}', '{"v":1,"ids":1,"cstate":{},"subs":[],"rpc":true}', '{"v":1,"ids":"x","cstate":{"a":1},"subs":[],"rpc":true}',
      '{"v":1,"ids":"x","cstate":{},"subs":[["id",{},[1]]],"rpc":true}']) assert.equal(decodeSnapshot(bad), null, bad);
  });

  test('frames: positioned messages in anycable-go key order; ping precisions', () => {
    assert.equal(positionedMessageFrame('{"channel":"A"}', 's', '{"x":1}', { epoch: 'e', offset: 5 }),
      '{"identifier":"{\\"channel\\":\\"A\\"}","message":{"x":1},"stream_id":"s","epoch":"e","offset":5}');
    assert.equal(positionedMessageFrame('i', 's', 'not json', { epoch: 'e', offset: 1 }), '{"identifier":"i","message":"not json","stream_id":"s","epoch":"e","offset":1}');
    // Replayed again (entries are checked once and remembered): the same answers, non-JSON still wrapped.
    for (let i = 0; i < 2; i++) {
      assert.equal(positionedMessageFrame('i', 's', 'not json', { epoch: 'e', offset: 1 }), '{"identifier":"i","message":"not json","stream_id":"s","epoch":"e","offset":1}');
      assert.equal(positionedMessageFrame('i', 's', '{"x":1}', { epoch: 'e', offset: 2 }), '{"identifier":"i","message":{"x":1},"stream_id":"s","epoch":"e","offset":2}');
      assert.equal(positionedMessageFrame('i', 's', '{"x":', { epoch: 'e', offset: 3 }), '{"identifier":"i","message":"{\\"x\\":","stream_id":"s","epoch":"e","offset":3}');
    }
    assert.equal(pingTimestamp(1700000000123, 's'), '1700000000');
    assert.equal(pingTimestamp(1700000000123, parsePingPrecision('ms')), '1700000000123');
    assert.equal(pingTimestamp(1700000000123, parsePingPrecision('ns')), '1700000000123000000');
    assert.equal(parsePingPrecision('minutes'), 's');
  });
});

/** A session with a fake socket: frames sent directly, and whether the socket is in each topic. */
class FakeClient implements HistoryClient {
  readonly sent: string[] = [];
  readonly inTopic = new Set<string>();
  live = true;
  readonly socket: TopicSocket = {
    subscribe: (t) => { this.inTopic.add(t); return true; },
    unsubscribe: (t) => this.inTopic.delete(t),
    isSubscribed: (t) => this.inTopic.has(t),
    publish: () => true,
  };
  constructor(readonly sid: string, private readonly subs: Map<string, Set<string>>) {}
  get liveSocket(): TopicSocket | null { return this.live ? this.socket : null; }
  send(frame: string): boolean { if (this.live) this.sent.push(frame); return this.live; }
  cork(writes: () => void): void { writes(); }
  subscription(identifier: string): { streams: ReadonlySet<string> } | undefined {
    const streams = this.subs.get(identifier);
    return streams ? { streams } : undefined;
  }
  /** What the client sees: direct frames, plus topic deliveries while it is in the topic. */
  deliver(stream: string, identifier: string, frame: string): void {
    if (this.live && this.inTopic.has(JSON.stringify([stream, identifier]))) this.sent.push(frame);
  }
}

const gate: TopicGate = {
  hold: (socket, stream, identifier) => { socket.unsubscribe(JSON.stringify([stream, identifier])); },
  release: (socket, stream, identifier, live) => { if (live) socket.subscribe(JSON.stringify([stream, identifier])); },
};

describe('history server with catch-up holds', () => {
  const id = '{"channel":"A"}';
  function setup(graceMs = 0, historyLimit = 100) {
    const broker = new MemoryBroker({ historyLimit, historyTtlS: 300, sessionsTtlS: 0 });
    const catchUp = new CatchUp(gate);
    const metrics = new Metrics();
    const server = new HistoryServer(broker, catchUp, { graceMs }, metrics, logger);
    const client = new FakeClient('sid-1', new Map([[id, new Set(['s'])]]));
    client.socket.subscribe(JSON.stringify(['s', id]));
    /** A broadcast as the node does it: position, catch-up buffers, then the topic. */
    const broadcast = (data: string): StreamPosition => {
      const position = broker.history.append('s', data);
      catchUp.onBroadcast('s', data, position, null);
      client.deliver('s', id, positionedMessageFrame(id, 's', data, position));
      return position;
    };
    return { broker, catchUp, metrics, server, client, broadcast };
  }
  const datas = (frames: readonly string[]): unknown[] => frames.map((f) => { const v = JSON.parse(f) as { message?: unknown; type?: string }; return v.type ?? v.message; });

  test('messages after the position, in order, then confirm_history; a hit is counted', async () => {
    const { server, client, broadcast, metrics } = setup();
    const p1 = broadcast('1');
    broadcast('2');
    broadcast('3');
    client.sent.length = 0;
    await server.serve(client, id, { since: null, streams: new Map([['s', p1]]) });
    assert.deepEqual(datas(client.sent), [2, 3, 'confirm_history']);
    assert.equal(metrics.counters.history_hits_total, 1);
    assert.ok(client.inTopic.has(JSON.stringify(['s', id])), 'back in the topic');
  });

  test('live messages during the read wait, and none is sent twice (randomised interleavings)', async () => {
    for (let seed = 1; seed <= 30; seed++) {
      let state = seed;
      const rand = (): number => { state = (state * 1103515245 + 12345) % 2147483648; return state / 2147483648; };
      const { server, client, broadcast } = setup(rand() < 0.5 ? 0 : 5);
      const p0 = broadcast('0');
      for (let i = 1; i <= 3; i++) broadcast(String(i));
      client.sent.length = 0;
      const serving = server.serve(client, id, { since: null, streams: new Map([['s', p0]]) });
      let n = 4;
      const live = Array.from({ length: Math.floor(rand() * 5) }, () => n++);
      for (const i of live) {
        if (rand() < 0.5) await Promise.resolve();
        broadcast(String(i));
      }
      await serving;
      await new Promise((r) => setTimeout(r, 10));
      broadcast(String(n));
      const got = datas(client.sent).filter((x) => x !== 'confirm_history');
      assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1), `seed ${seed}`);
    }
  });

  test('with a grace (shared brokers) a message stored after the read but never delivered live still arrives, once', async () => {
    const { server, client, broadcast, broker, catchUp } = setup(10);
    const p1 = broadcast('1');
    client.sent.length = 0;
    await server.serve(client, id, { since: null, streams: new Map([['s', p1]]) });
    // Stored, but lost on its way through pub/sub (this node was not subscribed yet).
    broker.history.append('s', '2');
    // Stored and delivered live while held.
    broadcast('3');
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(catchUp.active, false);
    broadcast('4');
    assert.deepEqual(datas(client.sent), ['confirm_history', 2, 3, 4]);
  });

  test('a hold whose buffer fills up ends early: every message still arrives once (older history after newer live ones)', async () => {
    const { server, client, broadcast, catchUp } = setup(20, 2000);
    broadcast('1');
    const p2 = broadcast('2');
    for (let i = 3; i <= 5; i++) broadcast(String(i));
    client.sent.length = 0;
    const serving = server.serve(client, id, { since: null, streams: new Map([['s', p2]]) });
    // Over 1,000 live messages while history is read: the hold gives up buffering.
    for (let i = 6; i <= 1100; i++) broadcast(String(i));
    await serving;
    for (let i = 1101; i <= 1110; i++) broadcast(String(i));
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(catchUp.active, false);
    const got = datas(client.sent).filter((x) => x !== 'confirm_history') as number[];
    assert.equal(new Set(got).size, got.length, 'no message twice');
    assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: 1108 }, (_, i) => i + 3));
  });

  test('a presence event while the session is held for history is kept for it and arrives once', async () => {
    const { server, client, broadcast, catchUp } = setup(20);
    const p1 = broadcast('1');
    broadcast('2');
    client.sent.length = 0;
    const serving = server.serve(client, id, { since: null, streams: new Map([['s', p1]]) });
    broadcast('3');
    catchUp.onPresence('s', '{"type":"join","id":"u1","info":"x"}');
    broadcast('4');
    await serving;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(catchUp.active, false);
    const kinds = client.sent.map((f) => JSON.parse(f) as { type?: string; message: unknown }).map((f) => f.type ?? f.message);
    // Messages in order, once; the event once (with a grace, stored messages the tail read sends may come before it).
    assert.deepEqual(kinds.filter((k) => k !== 'presence'), [2, 'confirm_history', 3, 4]);
    const presence = client.sent.filter((f) => f.includes('"type":"presence"'));
    assert.deepEqual(presence, [`{"type":"presence","identifier":${JSON.stringify(id)},"message":{"type":"join","id":"u1","info":"x"}}`]);
  });

  test('an unknown epoch, an evicted position, an unknown subscription or no broker get reject_history', async () => {
    const { server, client, broadcast, metrics } = setup();
    broadcast('1');
    client.sent.length = 0;
    await server.serve(client, id, { since: null, streams: new Map([['s', { epoch: 'other', offset: 1 }]]) });
    await server.serve(client, '{"channel":"Unknown"}', { since: 0, streams: new Map() });
    await server.serve(client, id, null);
    const none = new HistoryServer(null, new CatchUp(gate), { graceMs: 0 }, metrics, logger);
    await none.serve(client, id, { since: 0, streams: new Map() });
    assert.deepEqual(client.sent, [
      JSON.stringify({ type: 'reject_history', identifier: id }),
      JSON.stringify({ type: 'reject_history', identifier: '{"channel":"Unknown"}' }),
      JSON.stringify({ type: 'reject_history', identifier: id }),
      JSON.stringify({ type: 'reject_history', identifier: id }),
    ]);
    assert.equal(metrics.counters.history_misses_total, 4);
    assert.ok(client.inTopic.has(JSON.stringify(['s', id])));
  });

  test('a restore hold buffers until a history request takes it over, or until it expires', async () => {
    const { server, client, broadcast, catchUp } = setup();
    const p1 = broadcast('1');
    client.sent.length = 0;
    const hold = catchUp.hold(client, id, 's');
    assert.ok(hold);
    catchUp.expireLater(hold, 60_000);
    broadcast('2');
    broadcast('3');
    assert.deepEqual(client.sent, [], 'held');
    await server.serve(client, id, { since: null, streams: new Map([['s', p1]]) });
    assert.deepEqual(datas(client.sent), [2, 3, 'confirm_history']);
    assert.equal(catchUp.active, false, 'the taken-over hold ended with the request');

    client.sent.length = 0;
    const again = catchUp.hold(client, id, 's');
    catchUp.expireLater(again!, 5);
    broadcast('4');
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(datas(client.sent), [4]);
    assert.equal(catchUp.active, false);
  });
});

describe('hub holds for catching up', () => {
  class Sock implements TopicSocket {
    readonly topics = new Set<string>();
    subscribe(t: string): boolean { if (this.topics.has(t)) return false; this.topics.add(t); return true; }
    unsubscribe(t: string): boolean { return this.topics.delete(t); }
    isSubscribed(t: string): boolean { return this.topics.has(t); }
    publish(): boolean { return true; }
  }

  test('a held socket leaves the topic but keeps the stream followed; unsubscribing while held leaves nothing behind', async () => {
    const { Hub } = await import('../../src/hub/hub.js');
    const published: Array<[string, string]> = [];
    const removed: string[] = [];
    const metrics = new Metrics();
    const hub = new Hub({ publish: (t, m) => { published.push([t, m]); return true; } }, metrics, { onStreamAdded: () => undefined, onStreamRemoved: (s) => removed.push(s) });
    const [a, b] = [new Sock(), new Sock()];
    hub.subscribe(a, 's', 'id');
    hub.subscribe(b, 's', 'id');
    hub.hold(a, 's', 'id');
    assert.equal(a.topics.size, 0);
    hub.broadcast('s', '1', null, { epoch: 'e', offset: 1 });
    assert.equal(metrics.counters.server_msg_total, 1, 'the held socket is not counted as a receiver');
    assert.equal(published[0]?.[1], '{"identifier":"id","message":1,"stream_id":"s","epoch":"e","offset":1}');
    hub.release(a, 's', 'id', true);
    assert.equal(a.topics.size, 1, 'back in the topic');
    hub.hold(a, 's', 'id');
    hub.unsubscribe(a, 's', 'id');
    hub.release(a, 's', 'id', true);
    assert.equal(a.topics.size, 0, 'a stopped stream is not re-entered at release');
    assert.deepEqual([...hub.routes()], [{ stream: 's', identifier: 'id', subscribers: 1 }]);
    hub.hold(b, 's', 'id');
    hub.unsubscribe(null, 's', 'id');
    hub.release(b, 's', 'id', false);
    assert.deepEqual(removed, ['s'], 'the last subscriber left, held or not');
    assert.deepEqual([...hub.routes()], []);
  });
});

describe('session keeper', () => {
  test('live sessions are written again every refresh, so they outlive the TTL; a finished one is not', async () => {
    const { SessionKeeper } = await import('../../src/reliable/session-keeper.js');
    let now = 0;
    const broker = new MemoryBroker({ historyLimit: 10, historyTtlS: 10, sessionsTtlS: 10 }, () => now);
    const keeper = new SessionKeeper(broker, new CatchUp(gate), { restoreHoldMs: 10, refreshMs: 5 }, new Metrics(), logger);
    const session = (sid: string) => ({
      sid, identifiers: '{"u":1}', cstate: {}, subscriptions: new Map(), usedRpc: false, liveSocket: null,
      send: () => true, cork: (w: () => void) => w(), subscription: () => undefined,
      patchConnectionState: () => undefined, authenticated: () => true, confirmSubscription: () => true,
      patchChannelState: () => undefined, startStreams: () => undefined,
    });
    const live = session('live');
    const gone = session('gone');
    keeper.commit(live);
    keeper.commit(gone);
    keeper.finish(gone);
    keeper.start();
    try {
      for (let step = 0; step < 4; step++) {
        now += 6_000;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(await broker.sessions.fetch('live'), 'refreshed while alive');
      assert.equal(await broker.sessions.fetch('gone'), null, 'expired sessions_ttl after its close');
    } finally {
      keeper.stop();
    }
  });
});
