// Randomized interleavings of many sessions against a fake RPC app whose answers arrive in an order
// chosen by fast-check's scheduler. Seeded and bounded: CABLECAT_FC_SEED / CABLECAT_FC_RUNS reproduce
// or widen a run (fast-check prints the seed and path of any counterexample).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CancelledError, commandResult,
  type CallContext, type CommandResult, type ConnectResult, type Controller, type DisconnectContext,
} from '../../src/node/controller.js';
import { nodeHarness, settle, type FakeSocket, type NodeHarness } from '../helpers/node-fakes.js';
import type { Session } from '../../src/node/session.js';

const SEED = Number(process.env.CABLECAT_FC_SEED ?? 20261130);
const RUNS = Number(process.env.CABLECAT_FC_RUNS ?? 1500);

type Action = 'noop' | 'follow' | 'unfollow' | 'stop' | 'kick';
type Op =
  | { readonly op: 'subscribe' | 'unsubscribe'; readonly ch: number }
  | { readonly op: 'perform'; readonly ch: number; readonly action: Action }
  | { readonly op: 'close' }
  /** The reported repro: a command, then the close right behind it. */
  | { readonly op: 'leave'; readonly command: 'subscribe' | 'unsubscribe'; readonly ch: number };

/** What the app does with a call: answer, fail with a status, throw before processing, or (slot wait) nothing. */
type Outcome = 'success' | 'failure' | 'error' | 'throw';

const channel = (ch: number): string => JSON.stringify({ channel: 'Chat', room: ch });
const streamOf = (ch: number): string => `room${ch}`;

type AppEvent =
  | { readonly kind: 'sent'; readonly sid: string; readonly command: string; readonly identifier: string; readonly outcome: Outcome }
  | { readonly kind: 'answered'; readonly sid: string }
  | { readonly kind: 'disconnect'; readonly sid: string; readonly subscriptions: readonly string[] };

/** The app side: every call first waits for a slot (cancellable, as in RpcController), then is answered later. */
class ScheduledApp implements Controller {
  readonly events: AppEvent[] = [];
  private next = 0;

  constructor(private readonly s: fc.Scheduler, private readonly outcomes: readonly Outcome[]) {}

  private outcome(): Outcome {
    return this.outcomes[this.next++ % this.outcomes.length] ?? 'success';
  }

  async authenticate(ctx: CallContext): Promise<ConnectResult> {
    await this.s.schedule(Promise.resolve(), `connect ${ctx.sid}`);
    return { status: 'success', identifiers: ctx.sid, transmissions: [JSON.stringify({ type: 'welcome', sid: ctx.sid })], usedRpc: true };
  }

  private async call(ctx: CallContext, command: string, identifier: string, data: string): Promise<CommandResult> {
    await this.s.schedule(Promise.resolve(), `slot ${ctx.sid} ${command}`);
    if (ctx.signal.aborted) throw new CancelledError();
    const outcome = this.outcome();
    this.events.push({ kind: 'sent', sid: ctx.sid, command, identifier, outcome });
    const answer = this.answer(command, identifier, data, outcome);
    try {
      return await this.s.schedule(answer, `answer ${ctx.sid} ${command} ${outcome}`);
    } finally {
      this.events.push({ kind: 'answered', sid: ctx.sid });
    }
  }

  private answer(command: string, identifier: string, data: string, outcome: Outcome): Promise<CommandResult> {
    if (outcome === 'throw') return Promise.reject(new Error('app unreachable'));
    if (outcome === 'error') return Promise.resolve(commandResult('error', { errorMsg: 'boom', usedRpc: true }));
    const room = (JSON.parse(identifier) as { room: number }).room;
    if (command === 'subscribe') {
      return Promise.resolve(outcome === 'success'
        ? commandResult('success', { transmissions: [JSON.stringify({ identifier, type: 'confirm_subscription' })], streams: [streamOf(room)], usedRpc: true })
        : commandResult('failure', { transmissions: [JSON.stringify({ identifier, type: 'reject_subscription' })], usedRpc: true }));
    }
    if (command === 'unsubscribe' || outcome === 'failure') return Promise.resolve(commandResult(outcome, { usedRpc: true }));
    const action = (JSON.parse(data) as { action: Action }).action;
    const fields: Partial<CommandResult> = {
      follow: { streams: [`extra${room}`] },
      unfollow: { stoppedStreams: [streamOf(room)] },
      stop: { stopStreams: true },
      kick: { transmissions: ['"bye"'], disconnect: true },
      noop: { transmissions: [JSON.stringify({ identifier, message: 'ok' })] },
    }[action];
    return Promise.resolve(commandResult('success', { ...fields, usedRpc: true }));
  }

  subscribe(ctx: CallContext, identifier: string): Promise<CommandResult> {
    return this.call(ctx, 'subscribe', identifier, '');
  }
  unsubscribe(ctx: CallContext, identifier: string): Promise<CommandResult> {
    return this.call(ctx, 'unsubscribe', identifier, '');
  }
  perform(ctx: CallContext, identifier: string, data: string): Promise<CommandResult> {
    return this.call(ctx, 'message', identifier, data);
  }
  async disconnect(ctx: DisconnectContext): Promise<void> {
    this.events.push({ kind: 'disconnect', sid: ctx.sid, subscriptions: ctx.subscriptions });
  }
  async shutdown(): Promise<void> {}
}

// Two rooms only, so sessions share (stream, identifier) routes and one session's mistakes show on another.
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('subscribe' as const), ch: fc.nat(1) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('unsubscribe' as const), ch: fc.nat(1) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('perform' as const), ch: fc.nat(1), action: fc.constantFrom<Action>('noop', 'follow', 'unfollow', 'stop', 'kick') }), weight: 2 },
  { arbitrary: fc.constant<Op>({ op: 'close' }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('leave' as const), command: fc.constantFrom('subscribe' as const, 'unsubscribe' as const), ch: fc.nat(1) }), weight: 1 },
);
const outcomeArb = fc.constantFrom<Outcome>('success', 'success', 'success', 'failure', 'error', 'throw');

interface Client {
  readonly sid: string;
  readonly session: Session;
  readonly socket: FakeSocket;
}

function send(h: NodeHarness, client: Client, op: Op): void {
  // uWS delivers nothing after a close.
  if (client.socket.closed) return;
  if (op.op === 'close') client.socket.drop();
  else if (op.op === 'leave') {
    h.send(client.session, { command: op.command, identifier: channel(op.ch) });
    client.socket.drop();
  }
  else if (op.op === 'perform') h.send(client.session, { command: 'message', identifier: channel(op.ch), data: JSON.stringify({ action: op.action }) });
  else h.send(client.session, { command: op.op, identifier: channel(op.ch) });
}

/** Hub routes, socket topics and actual deliveries all agree with the sessions' confirmed streams. */
function checkLiveState(h: NodeHarness, clients: readonly Client[]): void {
  const expected = new Map<string, number>();
  for (const { session, socket } of clients) {
    const topics = new Set<string>();
    if (session.isLive) {
      for (const [identifier, sub] of session.subscriptions) {
        for (const stream of sub.streams) {
          const key = JSON.stringify([stream, identifier]);
          expected.set(key, (expected.get(key) ?? 0) + 1);
          topics.add(key);
        }
      }
    }
    const held = new Set([...socket.topics].filter((t) => t !== '$ping'));
    assert.deepEqual(held, topics, `socket topics of ${session.sid} match its confirmed streams`);
  }
  const actual = new Map<string, number>();
  for (const route of h.hub.routes()) actual.set(JSON.stringify([route.stream, route.identifier]), route.subscribers);
  assert.deepEqual(actual, expected, 'hub route counts == live confirmed subscriptions');
  const followed = new Set([...actual.keys()].map((k) => (JSON.parse(k) as [string])[0]));
  for (const stream of new Set([...h.streamsAdded, ...h.streamsRemoved])) {
    const balance = h.streamsAdded.filter((s) => s === stream).length - h.streamsRemoved.filter((s) => s === stream).length;
    assert.equal(balance, followed.has(stream) ? 1 : 0, `pub/sub follows ${stream} exactly while someone here does`);
  }
  // Every live subscriber of a stream receives a broadcast once per identifier; nobody else does.
  for (const stream of followed) {
    const before = clients.map((c) => c.socket.frames.length);
    const marker = `probe-${stream}`;
    h.node.deliver({ kind: 'broadcast', stream, data: JSON.stringify(marker), excludeSocket: null });
    clients.forEach((c, i) => {
      const got = c.socket.frames.slice(before[i]).filter((f) => f.includes(marker)).length;
      const want = c.session.isLive ? [...c.session.subscriptions.values()].filter((sub) => sub.streams.has(stream)).length : 0;
      assert.equal(got, want, `${c.sid} receives ${stream}`);
    });
  }
}

/** After every session closed: one Disconnect each, after its last Command, listing what the app confirmed. */
function checkDisconnects(h: NodeHarness, app: ScheduledApp, clients: readonly Client[]): void {
  assert.deepEqual([...h.hub.routes()], [], 'hub is empty once everyone left');
  for (const { sid, session, socket } of clients) {
    assert.equal(session.state, 'closed');
    assert.equal(socket.writesAfterClose, 0, `no frame written to ${sid} after its close`);
    const mine = app.events.filter((e) => e.sid === sid);
    const disconnects = mine.filter((e) => e.kind === 'disconnect');
    assert.equal(disconnects.length, 1, `${sid}: exactly one Disconnect`);
    const at = mine.indexOf(disconnects[0]!);
    assert.equal(at, mine.length - 1, `${sid}: Disconnect after the last Command was sent and answered`);
    const confirmed = new Set<string>();
    for (const e of mine) {
      if (e.kind !== 'sent') continue;
      if (e.command === 'subscribe' && e.outcome === 'success') confirmed.add(e.identifier);
      // The app ran its unsubscribe callback (even if it then failed): the server forgets the channel too.
      if (e.command === 'unsubscribe') confirmed.delete(e.identifier);
    }
    const listed = (disconnects[0] as { subscriptions: readonly string[] }).subscriptions;
    assert.deepEqual(new Set(listed), confirmed, `${sid}: Disconnect lists exactly the confirmed subscriptions`);
    assert.equal(listed.length, confirmed.size);
  }
}

/** Runs every scheduled task, including those that continuations schedule a few microtasks later. */
async function drain(s: fc.Scheduler): Promise<void> {
  do {
    await s.waitAll();
    await settle();
  } while (s.count() > 0);
}

test('randomized interleavings: hub counts, Disconnect order and content, no write after close, others keep receiving', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.scheduler(),
      fc.array(fc.array(opArb, { minLength: 1, maxLength: 8 }), { minLength: 2, maxLength: 4 }),
      fc.array(outcomeArb, { minLength: 1, maxLength: 12 }),
      async (s, scripts, outcomes) => {
        const app = new ScheduledApp(s, outcomes);
        const h = nodeHarness(app, { disconnectMode: 'always' });
        const clients: Client[] = scripts.map((_, i) => ({ sid: `s${i}`, ...h.connect(`s${i}`) }));
        scripts.forEach((ops, i) => {
          s.scheduleSequence(ops.map((op) => ({ label: `${clients[i]!.sid} ${JSON.stringify(op)}`, builder: async () => send(h, clients[i]!, op) })));
        });
        await drain(s);
        checkLiveState(h, clients);
        for (const client of clients) client.socket.drop();
        await drain(s);
        checkDisconnects(h, app, clients);
      },
    ),
    { seed: SEED, numRuns: RUNS },
  );
});
