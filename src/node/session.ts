import type { CallContext, DisconnectContext, RequestInfo } from './controller.js';
import type { TopicSocket } from '../hub/hub.js';
import type { Counters } from '../metrics/metrics.js';
import type { ClientCommand } from '../protocol/decoder.js';
import { SmallMap, SmallSet } from './small-collections.js';

/** A client command that runs through the queue (ping/pong are answered on arrival). */
export type ChannelCommand = Exclude<ClientCommand, { command: 'ping' | 'pong' }>;

/**
 * What a session needs from its connection. A uWS WebSocket satisfies it as is; another transport
 * (SSE, a test fake) implements these few methods. Topic methods are how the hub reaches it.
 */
export interface SessionSocket extends TopicSocket {
  send(message: string, isBinary?: boolean): number;
  /** Closes the connection; the transport then reports the close (synchronously for uWS). */
  end(code?: number, shortMessage?: string): void;
  getBufferedAmount(): number;
  /** Runs `cb` with writes batched into one syscall. */
  cork(cb: () => void): unknown;
}

/** The slice of the hub a session drives: one subscribe and one unsubscribe per (socket, stream, identifier). */
export interface StreamIndex {
  subscribe(socket: TopicSocket, stream: string, identifier: string): void;
  /** `socket` is null once the connection is gone (the transport dropped its topics itself). */
  unsubscribe(socket: TopicSocket | null, stream: string, identifier: string): void;
}

/** A call waiting its turn: authentication first, then the client's commands in arrival order. */
export type SessionCall =
  | { readonly kind: 'authenticate'; readonly bytes: 0 }
  | { readonly kind: 'command'; readonly command: ChannelCommand; readonly bytes: number };

/** A call still running (settles when done), or `undefined` when it ran to the end synchronously. */
export type Pending = Promise<void> | undefined;

/** What the node provides to every session: one shared object, so a session carries a single pointer. */
export interface SessionHost {
  readonly hub: StreamIndex;
  readonly counters: Counters;
  /**
   * The session inside whose own transport callback we are, when the transport batches that callback's
   * writes itself (uWS corks a socket during its open and message callbacks): its `cork` calls through.
   */
  corked: Session | null;
  /** Budget for `enqueue`, bytes. */
  readonly commandQueueBytes: number;
  /** Runs one call (the dispatcher): to completion when it answers `undefined`; never rejects for protocol outcomes. */
  run(session: Session, call: SessionCall): Pending;
  onCallError(session: Session, err: unknown): void;
  /** connecting → open. */
  onOpened(session: Session): void;
  /** → closing: the transport is gone, no frame may be written from now on. */
  onTransportClosed(session: Session, wasOpen: boolean): void;
  /**
   * closing → closed: the last call has finished. `identified`: the app accepted the connection, so it may
   * have to be told (`session.disconnectContext()`, built only then: most closes owe the app nothing).
   */
  onClosed(session: Session, identified: boolean): void;
}

/** A confirmed subscription as others see it: only the session changes it. */
export interface Subscription {
  /** Channel state (istate), merged from RPC responses. */
  readonly istate: Readonly<Record<string, string>>;
  /** Streams this subscription holds in the hub right now; empty once the transport is gone. */
  readonly streams: ReadonlySet<string>;
}

interface OwnSubscription {
  /** Frozen while shared (no state, or a controller's frozen answer); copied on the first write. */
  istate: Readonly<Record<string, string>>;
  readonly streams: SmallSet<string>;
}

/**
 * connecting: transport up, authentication queued or running.
 * open: authenticated; commands run.
 * closing: the transport is gone; waiting calls were dropped, the one in flight finishes and is unwound.
 * closed: nothing left; Disconnect (if any) was handed over.
 */
export type SessionState = 'connecting' | 'open' | 'closing' | 'closed';

export type EnqueueResult = 'queued' | 'over_budget' | 'closed';

const EMPTY_SUBSCRIPTIONS: ReadonlyMap<string, OwnSubscription> = new SmallMap();
const EMPTY_STATE: Readonly<Record<string, string>> = Object.freeze({});
/** The first call of every session: one shared value, not one per connect. */
const AUTHENTICATE: SessionCall = Object.freeze({ kind: 'authenticate', bytes: 0 });
/** Disconnect calls run after the connection is gone: nothing cancels them. */
const NEVER_ABORTED = new AbortController().signal;

/**
 * One client connection as a state machine. It owns its transitions, its subscription record and its
 * ordered call queue, and issues every effect from a transition, so each happens exactly once:
 * a stream enters the hub when it enters the record of an open session and leaves it when it leaves
 * the record (or when the transport goes, which empties the record's streams in one step).
 * The node and the dispatcher ask; they never edit its fields.
 */
export class Session implements CallContext {
  private currentState: SessionState = 'connecting';
  private socket: SessionSocket | null = null;
  private ids = '';
  /** Authenticated (success from the controller), possibly after the transport went. */
  private identified = false;
  /** Created by the first cstate patch (only RPC apps send any). */
  private connectionState: Record<string, string> | null = null;
  /** identifier → subscription the app confirmed; created on the first subscribe (idle connections never need it). */
  private subs: SmallMap<string, OwnSubscription> | null = null;
  /** Whether the app took part (RPC connect or an RPC channel), for auto disconnect mode. */
  usedRpc = false;
  /** Per-connection ping override from ?pi= (null = the shared ping). */
  readonly customPingS: number | null;
  /** Liveness bookkeeping (owned by the liveness module). */
  nextPingAt = 0;
  onSharedPing = false;

  /** Created on first use: most sessions (JWT, streams) never make an RPC call to cancel. */
  private abort: AbortController | null = null;
  /** Calls waiting behind the running one; null while there are none (the common case). */
  private waiting: SessionCall[] | null = null;
  /** Index of the next waiting call in `waiting`. */
  private waitingHead = 0;
  private running = false;
  /** Bytes of commands received and not yet finished (waiting and running). */
  private pendingBytes = 0;

  constructor(
    readonly sid: string,
    readonly request: RequestInfo,
    customPingS: number | null,
    private readonly host: SessionHost,
  ) {
    this.customPingS = customPingS;
  }

  get state(): SessionState {
    return this.currentState;
  }

  get identifiers(): string {
    return this.ids;
  }

  /** Connection state (cstate), merged from RPC responses. */
  get cstate(): Readonly<Record<string, string>> {
    return this.connectionState ?? EMPTY_STATE;
  }

  /** Merges a cstate patch from the app: an empty value deletes the key (the RPC contract). */
  patchConnectionState(patch: Readonly<Record<string, string>>): void {
    mergeState((this.connectionState ??= {}), patch);
  }

  /** Merges an istate patch into a confirmed subscription. */
  patchChannelState(identifier: string, patch: Readonly<Record<string, string>>): void {
    const sub = this.subs?.get(identifier);
    if (sub !== undefined) sub.istate = patchedState(sub.istate, patch);
  }

  /** A call is running (it finishes, and is unwound, after the transport goes). */
  get callRunning(): boolean {
    return this.running;
  }

  /** Frames may be written (connecting or open). */
  get isLive(): boolean {
    return this.socket !== null;
  }

  /** The live socket for hub exclusions and liveness checks; null once the transport is gone. */
  get liveSocket(): SessionSocket | null {
    return this.socket;
  }

  get signal(): AbortSignal {
    if (this.abort === null) {
      this.abort = new AbortController();
      if (this.socket === null && this.currentState !== 'connecting') this.abort.abort();
    }
    return this.abort.signal;
  }

  // ---- transitions ------------------------------------------------------------------------

  /** The transport is up: authentication is the first call. */
  attach(socket: SessionSocket): void {
    if (this.currentState !== 'connecting' || this.socket !== null) return;
    this.socket = socket;
    this.enqueue(AUTHENTICATE);
  }

  /**
   * The controller accepted the connection. connecting → open, true; when the transport went meanwhile
   * the identity is still recorded (the app must hear Disconnect) and the answer is false.
   */
  authenticated(identifiers: string): boolean {
    this.ids = identifiers;
    this.identified = true;
    this.request.token = '';
    if (this.currentState !== 'connecting' || this.socket === null) return false;
    this.currentState = 'open';
    this.host.onOpened(this);
    return true;
  }

  /** Server-side close: a close frame with `code`; a no-op once closing. */
  close(code: number, reason?: string): void {
    const socket = this.socket;
    if (socket === null) return;
    socket.end(code, reason);
    // uWS reports the close synchronously from end(); another transport may not, and no frame
    // may follow the close frame either way.
    this.transportClosed();
  }

  /**
   * The transport is gone (connecting|open → closing). Waiting calls are dropped unsent, the hub
   * forgets every stream once, a call in flight is cancelled if still waiting for an RPC slot.
   */
  transportClosed(): void {
    if (this.socket === null) return;
    const wasOpen = this.currentState === 'open';
    this.socket = null;
    this.currentState = 'closing';
    if (this.waiting !== null) {
      for (let i = this.waitingHead; i < this.waiting.length; i++) this.pendingBytes -= this.waiting[i]!.bytes;
      this.waiting = null;
      this.waitingHead = 0;
    }
    if (this.subs !== null) {
      // Index loops over the snapshots: no iterator or closure objects on every close.
      const hub = this.host.hub;
      const subs = this.subs.flatSnapshot;
      for (let i = 0; i < subs.length; i += 2) {
        const identifier = subs[i] as string;
        const streams = (subs[i + 1] as OwnSubscription).streams;
        const names = streams.snapshot;
        for (let j = 0; j < names.length; j++) hub.unsubscribe(null, names[j]!, identifier);
        streams.clear();
      }
    }
    this.abort?.abort();
    this.host.onTransportClosed(this, wasOpen);
    if (!this.running) this.finish();
  }

  /** closing → closed, once the last call has finished. */
  private finish(): void {
    this.currentState = 'closed';
    this.host.onClosed(this, this.identified);
  }

  /** What the app's Disconnect call gets: identity, state and the confirmed subscriptions at the close. */
  disconnectContext(): DisconnectContext {
    const istates: Record<string, string> = {};
    for (const [identifier, sub] of this.ownSubscriptions) istates[identifier] = JSON.stringify(sub.istate);
    return {
      sid: this.sid,
      request: this.request,
      identifiers: this.ids,
      cstate: { ...this.connectionState },
      signal: NEVER_ABORTED,
      subscriptions: [...this.subscriptions.keys()],
      istates,
    };
  }

  // ---- the call queue ---------------------------------------------------------------------

  /**
   * Queues a call behind the running one, so a perform never overtakes its subscribe and Disconnect
   * comes after everything. Over the byte budget the caller closes the connection; one command is
   * always accepted so a single max-size frame fits whatever the budget.
   */
  enqueue(call: SessionCall): EnqueueResult {
    if (this.socket === null) return 'closed';
    if (this.pendingBytes > 0 && this.pendingBytes + call.bytes > this.host.commandQueueBytes) return 'over_budget';
    this.pendingBytes += call.bytes;
    if (this.running) (this.waiting ??= []).push(call);
    else this.start(call);
    return 'queued';
  }

  /**
   * Runs `call`, then each call waiting behind it for as long as they answer synchronously (JWT,
   * streams, dropped frames): a loop, not a recursion, so thousands of queued commands released by
   * one slow answer cannot exhaust the stack. An asynchronous answer resumes the loop when it settles.
   */
  private start(call: SessionCall): void {
    let next: SessionCall | undefined = call;
    while (next !== undefined) {
      const current: SessionCall = next;
      this.running = true;
      let pending: Pending;
      try {
        pending = this.host.run(this, current);
      } catch (err) {
        this.host.onCallError(this, err);
      }
      if (pending !== undefined) {
        pending.then(() => this.resume(current), (err: unknown) => {
          this.host.onCallError(this, err);
          this.resume(current);
        });
        return;
      }
      // Answered synchronously: done here, no promise, no microtask.
      next = this.done(current);
    }
  }

  private resume(call: SessionCall): void {
    const next = this.done(call);
    if (next !== undefined) this.start(next);
  }

  /** Ends the running call; the next waiting one, or none (and a closing session then closes). */
  private done(call: SessionCall): SessionCall | undefined {
    this.running = false;
    this.pendingBytes -= call.bytes;
    const waiting = this.waiting;
    if (waiting !== null) {
      const next = waiting[this.waitingHead];
      this.waitingHead++;
      // Dequeue in O(1): the array is dropped once drained instead of shifted on every call, and
      // compacted now and then when a steady stream of commands never lets it drain.
      if (this.waitingHead >= waiting.length) {
        this.waiting = null;
        this.waitingHead = 0;
      } else if (this.waitingHead >= 1024 && this.waitingHead * 2 >= waiting.length) {
        waiting.splice(0, this.waitingHead);
        this.waitingHead = 0;
      }
      if (next !== undefined) return next;
    }
    if (this.currentState === 'closing') this.finish();
    return undefined;
  }

  // ---- subscriptions ----------------------------------------------------------------------

  subscription(identifier: string): Subscription | undefined {
    return this.subs?.get(identifier);
  }

  /** identifier → subscription, in subscription order. */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.ownSubscriptions;
  }

  private get ownSubscriptions(): ReadonlyMap<string, OwnSubscription> {
    return this.subs ?? EMPTY_SUBSCRIPTIONS;
  }

  /**
   * Records a subscription the app confirmed. Also while closing: the subscribe was already sent,
   * so Disconnect must list it for the app to run its unsubscribe callback.
   */
  confirmSubscription(identifier: string): boolean {
    if (this.currentState !== 'open' && this.currentState !== 'closing') return false;
    const subs = (this.subs ??= new SmallMap());
    if (!subs.has(identifier)) subs.set(identifier, { istate: EMPTY_STATE, streams: new SmallSet() });
    return true;
  }

  /** Starts streams for a confirmed subscription; only a live, open session enters the hub. */
  startStreams(identifier: string, streams: readonly string[]): void {
    const sub = this.subs?.get(identifier);
    const socket = this.socket;
    if (sub === undefined || socket === null || this.currentState !== 'open') return;
    // Index loops on the connect path: no iterator objects.
    for (let i = 0; i < streams.length; i++) {
      const stream = streams[i]!;
      if (sub.streams.has(stream)) continue;
      sub.streams.add(stream);
      this.host.hub.subscribe(socket, stream, identifier);
    }
  }

  /** Stops the given streams (all of them when `streams` is null); each leaves the hub exactly once. */
  stopStreams(identifier: string, streams: readonly string[] | null): void {
    const sub = this.subs?.get(identifier);
    if (sub === undefined) return;
    for (const stream of streams ?? [...sub.streams]) {
      if (!sub.streams.delete(stream)) continue;
      this.host.hub.unsubscribe(this.socket, stream, identifier);
    }
  }

  /** The app ran unsubscribe (or the client left the channel): streams and state go. */
  removeSubscription(identifier: string): void {
    this.stopStreams(identifier, null);
    this.subs?.delete(identifier);
  }

  // ---- writes -----------------------------------------------------------------------------

  /** Sends a text frame; false (and nothing written) once the transport is gone. */
  send(frame: string): boolean {
    const socket = this.socket;
    if (socket === null) return false;
    socket.send(frame, false);
    const counters = this.host.counters;
    counters.server_msg_total++;
    counters.data_sent_total += Buffer.byteLength(frame);
    return true;
  }

  sendAll(frames: readonly string[]): void {
    for (let i = 0; i < frames.length; i++) this.send(frames[i]!);
  }

  /** Writes need no `cork` now: the transport batches them already (or is gone, so nothing is written). */
  get corked(): boolean {
    return this.socket === null || this.host.corked === this;
  }

  /** Runs `writes` corked: after an await we are outside any uWS callback, and each send would be a syscall. */
  cork(writes: () => void): void {
    const socket = this.socket;
    if (socket === null || this.host.corked === this) writes();
    else socket.cork(writes);
  }

  /**
   * A last frame (a disconnect reason), then the close frame, in one write: remote disconnects arrive
   * after an await (an HTTP body, a broker message). uWS sends the FIN when the cork is released.
   */
  closeWith(code: number, frame: string, reason?: string): void {
    this.cork(() => {
      this.send(frame);
      this.close(code, reason);
    });
  }
}

/**
 * `state` with `patch` applied. Frozen objects are shared (EMPTY_STATE, or the same frozen istate a stream
 * controller answers every subscriber with), so they are never written: a frozen patch onto no state is
 * taken as is, anything else is merged into the state, copied first when it is frozen.
 */
function patchedState(state: Readonly<Record<string, string>>, patch: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  if (state === EMPTY_STATE && Object.isFrozen(patch) && !deletesAny(patch)) return patch;
  const target = Object.isFrozen(state) ? { ...state } : (state as Record<string, string>);
  mergeState(target, patch);
  return target;
}

function deletesAny(patch: Readonly<Record<string, string>>): boolean {
  for (const key in patch) if (patch[key] === '') return true;
  return false;
}

function mergeState(target: Record<string, string>, patch: Readonly<Record<string, string>>): void {
  for (const [key, value] of Object.entries(patch)) {
    if (value === '') delete target[key];
    else target[key] = value;
  }
}
