import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Hub } from '../../src/hub/hub.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { Semaphore } from '../../src/rpc/semaphore.js';
import { CancelledError } from '../../src/node/controller.js';
import { RpcController } from '../../src/rpc/rpc-controller.js';
import { RpcError } from '../../src/errors.js';
import { GRPC_UNAVAILABLE, type RpcTransport } from '../../src/rpc/transport.js';
import { FakeSocket, FakeTopics, HeldController, SlotGate, nodeHarness, ok, settle } from '../helpers/node-fakes.js';

const id = (channel: string): string => JSON.stringify({ channel });
const subscribe = (identifier: string): unknown => ({ command: 'subscribe', identifier });
const unsubscribe = (identifier: string): unknown => ({ command: 'unsubscribe', identifier });
const perform = (identifier: string, action: string): unknown => ({ command: 'message', identifier, data: JSON.stringify({ action }) });
const confirm = (identifier: string): string => JSON.stringify({ identifier, type: 'confirm_subscription' });

describe('Hub', () => {
  const setup = (): { hub: Hub; topics: FakeTopics; removed: string[] } => {
    const topics = new FakeTopics();
    const removed: string[] = [];
    const hub = new Hub(topics, new Metrics(), { onStreamAdded: () => undefined, onStreamRemoved: (s) => removed.push(s) });
    return { hub, topics, removed };
  };

  test('a second unsubscribe of the same socket never takes another subscriber\'s share', () => {
    const { hub, topics, removed } = setup();
    const a = new FakeSocket(topics);
    const b = new FakeSocket(topics);
    hub.subscribe(a, 's', 'ch');
    hub.subscribe(b, 's', 'ch');
    hub.unsubscribe(a, 's', 'ch');
    hub.unsubscribe(a, 's', 'ch');
    assert.deepEqual([...hub.routes()], [{ stream: 's', identifier: 'ch', subscribers: 1 }]);
    assert.deepEqual(removed, []);
    hub.broadcast('s', '"x"', null);
    assert.deepEqual(b.frames, ['{"identifier":"ch","message":"x"}']);
    assert.deepEqual(a.frames, []);
  });

  test('subscribing the same socket twice counts once; the last unsubscribe removes the stream', () => {
    const { hub, topics, removed } = setup();
    const a = new FakeSocket(topics);
    hub.subscribe(a, 's', 'ch');
    hub.subscribe(a, 's', 'ch');
    assert.equal([...hub.routes()][0]?.subscribers, 1);
    hub.unsubscribe(a, 's', 'ch');
    assert.deepEqual([...hub.routes()], []);
    assert.deepEqual(removed, ['s']);
  });

  test('data is relayed as given: the parser already made it JSON text', () => {
    const { hub, topics } = setup();
    const a = new FakeSocket(topics);
    hub.subscribe(a, 's', 'ch');
    hub.broadcast('s', '{"n":1}', null);
    assert.deepEqual(a.parsed(), [{ identifier: 'ch', message: { n: 1 } }]);
  });
});

describe('Session lifecycle', () => {
  test('connecting → open → closing → closed; Disconnect once, after the transport closed', async () => {
    const app = new HeldController();
    const h = nodeHarness(app);
    const { session, socket } = h.connect('s1');
    assert.equal(session.state, 'connecting');
    await settle();
    assert.equal(session.state, 'open');
    assert.deepEqual(socket.parsed(), [{ type: 'welcome', sid: 's1' }]);
    socket.drop();
    assert.equal(session.state, 'closed');
    assert.equal(h.disconnects.length, 1);
    session.close(1000);
    socket.drop();
    assert.equal(h.disconnects.length, 1);
    assert.equal(socket.writesAfterClose, 0);
  });

  test('a call waiting in the queue when the socket closes is dropped, never sent', async () => {
    const app = new HeldController();
    const h = nodeHarness(app);
    const { session, socket } = h.connect('s1');
    await settle();
    h.send(session, subscribe(id('A')));
    h.send(session, perform(id('A'), 'one'));
    h.send(session, perform(id('A'), 'two'));
    await settle();
    assert.equal(app.held.length, 1, 'one call in flight at a time');
    socket.drop();
    assert.equal(session.state, 'closing');
    app.answer(ok({ transmissions: [confirm(id('A'))] }));
    await settle();
    assert.equal(session.state, 'closed');
    assert.deepEqual(app.log.map((c) => c.method === 'Command' ? c.command : c.method), ['Connect', 'subscribe', 'Disconnect']);
    assert.equal(socket.writesAfterClose, 0);
  });

  test('race: Disconnect waits for an in-flight subscribe and lists the subscription it confirmed', async () => {
    const app = new HeldController();
    const h = nodeHarness(app);
    const { session, socket } = h.connect('s1');
    await settle();
    h.send(session, subscribe(id('A')));
    await settle();
    socket.drop();
    assert.equal(h.disconnects.length, 0, 'Disconnect must not overtake the Command');
    app.answer(ok({ transmissions: [confirm(id('A'))], streams: ['room'] }));
    await settle();
    assert.deepEqual(app.log.map((c) => c.method), ['Connect', 'Command', 'Disconnect']);
    assert.deepEqual(h.disconnects[0]?.subscriptions, [id('A')]);
    assert.deepEqual([...h.hub.routes()], [], 'a closed session enters no stream');
    assert.deepEqual(h.streamsAdded, []);
    assert.equal(socket.writesAfterClose, 0);
  });

  test('race: a close during an in-flight unsubscribe leaves the other subscribers of the stream receiving', async () => {
    const app = new HeldController();
    app.immediate = (call) => call.method === 'Command' && call.command === 'subscribe' ? ok({ transmissions: [confirm(call.identifier)], streams: ['room'] }) : null;
    const h = nodeHarness(app);
    const a = h.connect('a');
    const b = h.connect('b');
    await settle();
    h.send(a.session, subscribe(id('Chat')));
    h.send(b.session, subscribe(id('Chat')));
    await settle();
    h.send(a.session, unsubscribe(id('Chat')));
    await settle();
    a.socket.drop();
    app.answer(ok());
    await settle();
    assert.deepEqual([...h.hub.routes()], [{ stream: 'room', identifier: id('Chat'), subscribers: 1 }]);
    assert.deepEqual(h.streamsRemoved, [], 'the stream stays followed (pub/sub) for B');
    h.node.deliver({ kind: 'broadcast', stream: 'room', data: '"hi"', excludeSocket: null });
    assert.deepEqual(b.socket.parsed().at(-1), { identifier: id('Chat'), message: 'hi' });
    assert.deepEqual(h.disconnects[0]?.subscriptions, [], 'the app ran unsubscribe: Disconnect does not list it again');
  });

  test('race: a close while the unsubscribe waits for an RPC slot (cancelled) leaves the others receiving; Disconnect lists it', async () => {
    const app = new HeldController();
    const gate = new SlotGate(app);
    app.immediate = (call) => call.method === 'Command' && call.command === 'subscribe' ? ok({ transmissions: [confirm(call.identifier)], streams: ['room'] }) : null;
    const h = nodeHarness(gate);
    const a = h.connect('a');
    const b = h.connect('b');
    await settle();
    h.send(a.session, subscribe(id('Chat')));
    h.send(b.session, subscribe(id('Chat')));
    await settle();
    gate.release();
    await settle();
    h.send(a.session, unsubscribe(id('Chat')));
    await settle();
    a.socket.drop();
    await settle();
    assert.equal(app.log.filter((c) => c.method === 'Command' && c.command === 'unsubscribe').length, 0, 'never sent');
    assert.deepEqual([...h.hub.routes()], [{ stream: 'room', identifier: id('Chat'), subscribers: 1 }]);
    h.node.deliver({ kind: 'broadcast', stream: 'room', data: '"hi"', excludeSocket: null });
    assert.deepEqual(b.socket.parsed().at(-1), { identifier: id('Chat'), message: 'hi' });
    assert.deepEqual(h.disconnects[0]?.subscriptions, [id('Chat')]);
  });

  test('a disconnect=true result sends its transmissions, closes, and the session unwinds once', async () => {
    const app = new HeldController();
    app.immediate = (call) => call.method === 'Command' && call.command === 'subscribe' ? ok({ transmissions: [confirm(call.identifier)], streams: ['room'] }) : null;
    const h = nodeHarness(app);
    const { session, socket } = h.connect('a');
    await settle();
    h.send(session, subscribe(id('A')));
    await settle();
    h.send(session, perform(id('A'), 'kick'));
    h.send(session, perform(id('A'), 'never'));
    await settle();
    app.answer(ok({ transmissions: ['"bye"'], disconnect: true }));
    await settle();
    assert.equal(socket.frames.at(-1), '"bye"');
    assert.equal(socket.closedWith?.code, 1000);
    assert.deepEqual([...h.hub.routes()], []);
    assert.equal(h.disconnects.length, 1);
    assert.deepEqual(h.disconnects[0]?.subscriptions, [id('A')]);
    assert.equal(app.log.filter((c) => c.method === 'Command' && c.data.includes('never')).length, 0);
    assert.equal(socket.writesAfterClose, 0);
  });

  test('writes after an RPC answer are corked into one batch', async () => {
    const app = new HeldController();
    const h = nodeHarness(app);
    const { session, socket } = h.connect('a');
    await settle();
    h.send(session, subscribe(id('A')));
    await settle();
    const before = socket.corked;
    app.answer(ok({ transmissions: ['"1"', '"2"', confirm(id('A'))], streams: ['x', 'y'] }));
    await settle();
    assert.equal(socket.corked - before, 1);
    assert.deepEqual(socket.frames.slice(-3), ['"1"', '"2"', confirm(id('A'))]);
  });
});

describe('call queue', () => {
  test('thousands of commands answered synchronously behind a slow call run in a loop, not a recursion', async () => {
    const app = new HeldController();
    const h = nodeHarness(app, { maxCommandQueueSize: 64 << 20 });
    const { session, socket } = h.connect('a');
    await settle();
    h.send(session, subscribe(id('Slow')));
    await settle();
    // Unknown subscriptions: each is dropped synchronously when its turn comes.
    const queued = 50_000;
    for (let i = 0; i < queued; i++) h.send(session, perform(id('Nope'), 'x'));
    app.answer(ok({ transmissions: [confirm(id('Slow'))] }));
    await settle();
    assert.equal(h.metrics.counters.failed_client_msg_total, queued);
    assert.equal(socket.closed, false);
    h.send(session, perform(id('Slow'), 'after'));
    await settle();
    assert.equal(app.held.length, 1, 'the queue still runs');
  });
});

describe('dispatcher: command queue budget', () => {
  test('past --max_command_queue_size the connection closes 1013 "Command queue full" and is counted', async () => {
    const app = new HeldController();
    const h = nodeHarness(app, { maxCommandQueueSize: 1024 });
    const { session, socket } = h.connect('a');
    await settle();
    const big = 'x'.repeat(300);
    h.send(session, perform(id('A'), big)); // in flight (unknown subscription, dropped at once)
    h.send(session, subscribe(id('A')));
    await settle();
    let sent = 0;
    while (!socket.closed && sent < 10) { h.send(session, perform(id('A'), big)); sent++; }
    assert.deepEqual(socket.closedWith, { code: 1013, reason: 'Command queue full' });
    assert.ok(sent >= 2 && sent <= 4, `closed after ${sent} frames of ~380 bytes over a 1 KiB budget`);
    assert.equal(h.metrics.counters.disconnected_command_overflow_total, 1);
    app.answer(ok({ transmissions: [confirm(id('A'))] }));
    await settle();
    assert.equal(session.state, 'closed');
    assert.equal(socket.writesAfterClose, 0);
  });

  test('one command is always accepted, however large', async () => {
    const app = new HeldController();
    const h = nodeHarness(app, { maxCommandQueueSize: 1024 });
    const { session, socket } = h.connect('a');
    await settle();
    h.send(session, subscribe(id('A'.repeat(4000))));
    await settle();
    assert.equal(socket.closed, false);
    assert.equal(app.held.length, 1);
  });
});

describe('Semaphore and RPC retries', () => {
  test('waiters run in order; an aborted waiter leaves without taking a slot', async () => {
    const sem = new Semaphore(1);
    const never = new AbortController().signal;
    await sem.acquire(never);
    const order: string[] = [];
    const leaving = new AbortController();
    const w1 = sem.acquire(never).then(() => order.push('w1'));
    const w2 = sem.acquire(leaving.signal).then(() => order.push('w2'), (e: unknown) => order.push(e instanceof CancelledError ? 'w2 cancelled' : 'w2 ?'));
    const w3 = sem.acquire(never).then(() => order.push('w3'));
    assert.equal(sem.pending, 3);
    leaving.abort();
    await w2;
    assert.equal(sem.pending, 2);
    sem.release();
    await w1;
    sem.release();
    await w3;
    assert.deepEqual(order, ['w2 cancelled', 'w1', 'w3']);
    assert.equal(sem.pending, 0);
  });

  test('a retry backoff ends when the connection closes: the slot is freed and the call counts as cancelled', async () => {
    let calls = 0;
    const transport: RpcTransport = {
      call: async () => { calls++; throw new RpcError(GRPC_UNAVAILABLE, 'unavailable'); },
      close: () => undefined,
    };
    const metrics = new Metrics();
    const rpc = new RpcController(transport, { concurrency: 1, commandTimeoutMs: 60_000, requestTimeoutMs: 0 }, metrics, pino({ level: 'silent' }));
    const closing = new AbortController();
    const ctx = { sid: 'a', request: { url: 'http://x/', headers: {}, token: '', keyUserId: null, protocol: '' as const, restoreSid: '', pingPrecision: 's' as const }, identifiers: '', cstate: {}, signal: closing.signal };
    const started = Date.now();
    const call = rpc.perform(ctx, 'ch', '{}', {});
    await settle();
    closing.abort();
    await assert.rejects(call, CancelledError);
    assert.ok(Date.now() - started < 5000, 'did not sleep through the backoff');
    assert.equal(metrics.counters.rpc_canceled_total, 1);
    // The slot is free again: another call gets it at once.
    const other = { ...ctx, sid: 'b', signal: new AbortController().signal };
    transport.call = async () => ({ status: 1, transmissions: [], streams: [], stop_streams: false, stopped_streams: [], disconnect: false, error_msg: '', env: { cstate: {}, istate: {} } });
    const result = await rpc.perform(other, 'ch', '{}', {});
    assert.equal(result.status, 'success');
    assert.ok(calls >= 1);
  });
});


