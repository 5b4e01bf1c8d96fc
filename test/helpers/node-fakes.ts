import { pino } from 'pino';
import { Hub, type TopicPublisher } from '../../src/hub/hub.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { Node } from '../../src/node/node.js';
import type { Session, SessionSocket } from '../../src/node/session.js';
import {
  CancelledError, commandResult,
  type Awaitable, type CallContext, type CommandResult, type ConnectResult, type Controller, type DisconnectContext,
} from '../../src/node/controller.js';
import type { DisconnectMode } from '../../src/config/config.js';

/** The uWS topic world in miniature: app-wide publish reaches every socket holding the topic. */
export class FakeTopics implements TopicPublisher {
  readonly sockets = new Set<FakeSocket>();

  publish(topic: string, message: string): boolean {
    for (const socket of this.sockets) if (socket.topics.has(topic)) socket.receive(message);
    return true;
  }
}

/** A socket that behaves like a uWS WebSocket where it matters: end() reports the close synchronously. */
export class FakeSocket implements SessionSocket {
  readonly topics = new Set<string>();
  readonly frames: string[] = [];
  closedWith: { code: number; reason: string } | null = null;
  /** Any write or topic change after the close: must stay 0. */
  writesAfterClose = 0;
  corked = 0;
  buffered = 0;
  onClose: () => void = () => undefined;

  constructor(private readonly world: FakeTopics) {
    world.sockets.add(this);
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  receive(message: string): void {
    if (this.closed) this.writesAfterClose++;
    else this.frames.push(message);
  }

  subscribe(topic: string): boolean {
    if (this.closed) { this.writesAfterClose++; return false; }
    if (this.topics.has(topic)) return false;
    this.topics.add(topic);
    return true;
  }

  unsubscribe(topic: string): boolean {
    if (this.closed) { this.writesAfterClose++; return false; }
    return this.topics.delete(topic);
  }

  isSubscribed(topic: string): boolean {
    return this.topics.has(topic);
  }

  publish(topic: string, message: string): boolean {
    for (const socket of this.world.sockets) if (socket !== this && socket.topics.has(topic)) socket.receive(message);
    return true;
  }

  send(message: string): number {
    if (this.closed) { this.writesAfterClose++; return 0; }
    this.frames.push(message);
    return 1;
  }

  end(code = 1000, reason = ''): void {
    if (this.closed) { this.writesAfterClose++; return; }
    this.shutDown(code, reason);
  }

  /** The client goes away. */
  drop(): void {
    if (!this.closed) this.shutDown(1006, '');
  }

  private shutDown(code: number, reason: string): void {
    this.closedWith = { code, reason };
    // uWS frees the topics before the close handler runs.
    this.topics.clear();
    this.world.sockets.delete(this);
    this.onClose();
  }

  getBufferedAmount(): number {
    return this.buffered;
  }

  cork(cb: () => void): this {
    this.corked++;
    cb();
    return this;
  }

  /** Frames received, parsed. */
  parsed(): unknown[] {
    return this.frames.map((f) => JSON.parse(f) as unknown);
  }
}

export type AppCall =
  | { readonly method: 'Connect'; readonly sid: string }
  | { readonly method: 'Command'; readonly sid: string; readonly command: 'subscribe' | 'unsubscribe' | 'message'; readonly identifier: string; readonly data: string }
  | { readonly method: 'Disconnect'; readonly sid: string; readonly subscriptions: readonly string[]; readonly istates: Readonly<Record<string, string>> };

interface Held {
  readonly call: AppCall;
  resolve(result: CommandResult): void;
  reject(err: unknown): void;
}

/**
 * A controller whose answers the test releases one by one, in any order. Calls are logged when
 * they reach the "app" (never for one cancelled while waiting for a slot).
 */
export class HeldController implements Controller {
  readonly log: AppCall[] = [];
  readonly held: Held[] = [];
  /** Answers without holding (e.g. authentication). */
  immediate: (call: AppCall) => CommandResult | null = () => null;

  async authenticate(ctx: CallContext): Promise<ConnectResult> {
    this.log.push({ method: 'Connect', sid: ctx.sid });
    return { status: 'success', identifiers: JSON.stringify({ sid: ctx.sid }), transmissions: [JSON.stringify({ type: 'welcome', sid: ctx.sid })], usedRpc: true };
  }

  private hold(ctx: CallContext, command: 'subscribe' | 'unsubscribe' | 'message', identifier: string, data: string): Promise<CommandResult> {
    const call: AppCall = { method: 'Command', sid: ctx.sid, command, identifier, data };
    this.log.push(call);
    const now = this.immediate(call);
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => this.held.push({ call, resolve, reject }));
  }

  subscribe(ctx: CallContext, identifier: string): Promise<CommandResult> {
    return this.hold(ctx, 'subscribe', identifier, '');
  }

  unsubscribe(ctx: CallContext, identifier: string): Promise<CommandResult> {
    return this.hold(ctx, 'unsubscribe', identifier, '');
  }

  perform(ctx: CallContext, identifier: string, data: string): Promise<CommandResult> {
    return this.hold(ctx, 'message', identifier, data);
  }

  async disconnect(ctx: DisconnectContext): Promise<void> {
    this.log.push({ method: 'Disconnect', sid: ctx.sid, subscriptions: ctx.subscriptions, istates: ctx.istates });
  }

  async shutdown(): Promise<void> {}

  /** Answers the oldest held call (or the one matching `pick`). */
  answer(result: CommandResult, pick: (call: AppCall) => boolean = () => true): AppCall {
    const idx = this.held.findIndex((h) => pick(h.call));
    if (idx === -1) throw new Error('no held call to answer');
    const [held] = this.held.splice(idx, 1);
    held!.resolve(result);
    return held!.call;
  }
}

/** Like RpcController's slot wait: the first call of each session waits until `release()`, and is dropped if its connection closes meanwhile. */
export class SlotGate implements Controller {
  private waiting: Array<() => void> = [];
  constructor(private readonly inner: Controller) {}

  release(): void {
    for (const go of this.waiting.splice(0)) go();
  }

  private gate<T>(ctx: CallContext, run: () => Awaitable<T>): Promise<T> {
    return new Promise<void>((resolve, reject) => {
      if (ctx.signal.aborted) { reject(new CancelledError()); return; }
      const onAbort = (): void => reject(new CancelledError());
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(() => { ctx.signal.removeEventListener('abort', onAbort); resolve(); });
    }).then(run);
  }

  authenticate(ctx: CallContext): Awaitable<ConnectResult> { return this.inner.authenticate(ctx); }
  subscribe(ctx: CallContext, id: string, istate: Readonly<Record<string, string>>): Promise<CommandResult> { return this.gate(ctx, () => this.inner.subscribe(ctx, id, istate)); }
  unsubscribe(ctx: CallContext, id: string, istate: Readonly<Record<string, string>>): Promise<CommandResult> { return this.gate(ctx, () => this.inner.unsubscribe(ctx, id, istate)); }
  perform(ctx: CallContext, id: string, data: string, istate: Readonly<Record<string, string>>): Promise<CommandResult> { return this.gate(ctx, () => this.inner.perform(ctx, id, data, istate)); }
  disconnect(ctx: DisconnectContext): Promise<void> { return this.inner.disconnect(ctx); }
  shutdown(): Promise<void> { return this.inner.shutdown(); }
}

export interface NodeHarness {
  readonly node: Node;
  readonly hub: Hub;
  readonly topics: FakeTopics;
  readonly metrics: Metrics;
  /** Disconnect contexts in the order the node queued them. */
  readonly disconnects: DisconnectContext[];
  connect(sid: string): { session: Session; socket: FakeSocket };
  send(session: Session, frame: unknown): void;
  streamsAdded: string[];
  streamsRemoved: string[];
}

export function nodeHarness(controller: Controller, opts: { maxCommandQueueSize?: number; disconnectMode?: DisconnectMode } = {}): NodeHarness {
  const topics = new FakeTopics();
  const metrics = new Metrics();
  const logger = pino({ level: 'silent' });
  const streamsAdded: string[] = [];
  const streamsRemoved: string[] = [];
  const hub = new Hub(topics, metrics, { onStreamAdded: (s) => streamsAdded.push(s), onStreamRemoved: (s) => streamsRemoved.push(s) });
  const disconnects: DisconnectContext[] = [];
  const node = new Node(
    { pingIntervalS: 3, maxMessageSize: 65536, maxPendingBytes: 1 << 20, maxCommandQueueSize: opts.maxCommandQueueSize ?? 1 << 20, disconnectMode: opts.disconnectMode ?? 'auto' },
    {
      controller, hub, metrics, logger,
      // The real queue only paces calls; the order of hand-over is what matters here.
      disconnectQueue: { enqueue: (ctx) => { disconnects.push(ctx); void controller.disconnect(ctx); } },
      publish: (pub) => node.deliver(pub),
    },
  );
  const encoder = new TextEncoder();
  return {
    node, hub, topics, metrics, disconnects, streamsAdded, streamsRemoved,
    connect(sid) {
      const session = node.createSession(sid, { url: 'http://localhost/cable', headers: {}, token: '', keyUserId: null, protocol: '', restoreSid: '', pingPrecision: 's' }, null);
      const socket = new FakeSocket(topics);
      socket.onClose = () => node.onClose(session);
      node.onOpen(session, socket);
      return { session, socket };
    },
    send(session, frame) {
      const bytes = encoder.encode(typeof frame === 'string' ? frame : JSON.stringify(frame));
      node.onMessage(session, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), false);
    },
  };
}

/** Lets every pending promise callback run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}

export const ok = (fields: Partial<Omit<CommandResult, 'status'>> = {}): CommandResult => commandResult('success', { usedRpc: true, ...fields });
