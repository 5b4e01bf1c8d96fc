import type { CallContext, RequestInfo } from './controller.js';
import type { TopicSocket } from '../hub/hub.js';

/** What a session needs from its socket; uWS WebSocket satisfies it. */
export interface SessionSocket extends TopicSocket {
  send(message: string, isBinary?: boolean): number;
  end(code?: number, shortMessage?: string): void;
  getBufferedAmount(): number;
}

export interface Subscription {
  /** Channel state (istate), merged from RPC responses. */
  istate: Record<string, string>;
  readonly streams: Set<string>;
}

export type SessionState = 'connecting' | 'connected' | 'closed';

/** Commands waiting behind a slow RPC call; past this the client is flooding and frames are dropped. */
export const MAX_PENDING_COMMANDS = 256;

const EMPTY_SUBSCRIPTIONS: ReadonlyMap<string, Subscription> = new Map();

/** One client connection: its identity, state and subscriptions, and an ordered command queue. */
export class Session implements CallContext {
  socket: SessionSocket | null = null;
  state: SessionState = 'connecting';
  identifiers = '';
  cstate: Record<string, string> = {};
  /** identifier → subscription; created on the first subscribe (idle connections never need it). */
  private subs: Map<string, Subscription> | null = null;
  /** Whether the app took part (RPC connect or an RPC channel), for auto disconnect mode. */
  usedRpc = false;
  /** Per-connection ping override from ?pi= (null = the shared ping). */
  readonly customPingS: number | null;
  nextPingAt = 0;
  /** Subscribed to the shared ping topic. */
  onSharedPing = false;
  /** Set when closing started on our side; the close callback finishes the cleanup. */
  closing = false;

  /** Created on first use: most sessions (JWT, streams) never make an RPC call to cancel. */
  private abort: AbortController | null = null;
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;

  constructor(
    readonly sid: string,
    readonly request: RequestInfo,
    customPingS: number | null,
  ) {
    this.customPingS = customPingS;
  }

  subscription(identifier: string): Subscription | undefined {
    return this.subs?.get(identifier);
  }

  addSubscription(identifier: string, sub: Subscription): void {
    (this.subs ??= new Map()).set(identifier, sub);
  }

  removeSubscription(identifier: string): void {
    this.subs?.delete(identifier);
  }

  /** identifier → subscription, in subscription order. */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.subs ?? EMPTY_SUBSCRIPTIONS;
  }

  get signal(): AbortSignal {
    if (this.abort === null) {
      this.abort = new AbortController();
      if (this.state === 'closed') this.abort.abort();
    }
    return this.abort.signal;
  }

  get isOpen(): boolean {
    return this.socket !== null && !this.closing;
  }

  /** Runs tasks one after another so a perform never overtakes its subscribe. False when the queue is full. */
  enqueue(task: () => Promise<void>, onError: (err: unknown) => void): boolean {
    if (this.pending >= MAX_PENDING_COMMANDS) return false;
    this.pending++;
    this.queue = this.queue.then(task).catch(onError).finally(() => { this.pending--; });
    return true;
  }

  /** Sends a text frame; false when the connection is closed or closing. */
  send(frame: string): boolean {
    if (!this.isOpen || this.socket === null) return false;
    this.socket.send(frame, false);
    return true;
  }

  /** Sends a close frame with `code`. Safe to call more than once. */
  close(code: number): void {
    if (!this.isOpen || this.socket === null) return;
    this.closing = true;
    // uWS calls the close handler synchronously from end(); cleanup happens there.
    this.socket.end(code);
  }

  /** Called from the uWS close handler: the socket must not be touched after this. */
  markClosed(): void {
    this.socket = null;
    this.state = 'closed';
    this.closing = true;
    this.abort?.abort();
  }
}
