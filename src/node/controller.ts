/**
 * The Controller is what the node asks to authenticate and to run channel commands.
 * Auth layers and the stream router wrap an inner controller (JWT → keys → public → router → RPC).
 * Protocol outcomes (failure, rejection) are values; only faults reject the promise.
 */
import { CablecatError } from '../errors.js';
import type { SupportedProtocol } from '../protocol/messages.js';
import type { PingPrecision } from '../protocol/ext-frames.js';

export type Status = 'success' | 'failure' | 'error';

/**
 * A call the controller never sent because its connection closed while it waited (for an RPC slot,
 * or between retries). The caller treats it as never made: nothing to record, nothing to unwind.
 */
export class CancelledError extends CablecatError {
  constructor() {
    super('CABLECAT_ERR_CANCELLED', 'connection closed while the call was waiting');
  }
}

/** What the upgrade captured about the HTTP request: uWS request objects die after the callback. */
export interface RequestInfo {
  /** Absolute http(s) URL of the request, as the RPC app expects in env.url. */
  readonly url: string;
  /** Proxied headers (lower-case names) plus REMOTE_ADDR and the JWT header when present. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The JWT from header, sub-protocol or query ('' when none). Cleared once the connection is authenticated:
   * nothing reads it later, and a token from the query keeps the whole query string alive.
   */
  token: string;
  /** Set when the upgrade was allowed by the WebSocket key; the id comes from the path or is "user". */
  readonly keyUserId: string | null;
  /** The sub-protocol in use ('' = none offered, JSON): ext-json turns on session recovery and pong checks. */
  readonly protocol: SupportedProtocol | '';
  /** The sid of a session to restore: X-AnyCable-Restore-Sid, else ?sid= ('' when none). */
  readonly restoreSid: string;
  /** Unit of ping timestamps (?ptp=s|ms|ns). */
  readonly pingPrecision: PingPrecision;
}

/** The slice of a session a controller may read. */
export interface CallContext {
  readonly sid: string;
  readonly request: RequestInfo;
  readonly identifiers: string;
  readonly cstate: Readonly<Record<string, string>>;
  /** Cancelled when the connection closes, so queued RPC calls are dropped. */
  readonly signal: AbortSignal;
}

export interface ConnectResult {
  readonly status: Status;
  readonly identifiers: string;
  readonly transmissions: readonly string[];
  readonly cstate?: Readonly<Record<string, string>>;
  readonly errorMsg?: string;
  /** Why a failure happened, for logs (e.g. "token expired"). */
  readonly reason?: string;
  /** True when the app took part (RPC), so auto disconnect mode calls Disconnect. */
  readonly usedRpc: boolean;
}

/** A presence change the app asked for on this subscription's presence stream ($p). */
export type PresenceAction =
  /** `info` is JSON text ('' = none). */
  | { readonly type: 'join'; readonly id: string; readonly info: string }
  | { readonly type: 'leave' };

export interface CommandResult {
  readonly status: Status;
  readonly transmissions: readonly string[];
  readonly streams: readonly string[];
  readonly stopStreams: boolean;
  readonly stoppedStreams: readonly string[];
  readonly disconnect: boolean;
  readonly cstate?: Readonly<Record<string, string>>;
  readonly istate?: Readonly<Record<string, string>>;
  readonly errorMsg?: string;
  readonly usedRpc: boolean;
  readonly presence?: PresenceAction;
}

export interface DisconnectContext extends CallContext {
  readonly subscriptions: readonly string[];
  /** identifier → JSON-encoded channel state */
  readonly istates: Readonly<Record<string, string>>;
}

/**
 * A value now, or later. Layers that decide without I/O (JWT, public, signed streams) answer with the value
 * itself, so the common connect and subscribe run to the end inside the socket callback.
 */
export type Awaitable<T> = T | Promise<T>;

export function isPromise<T>(value: Awaitable<T>): value is Promise<T> {
  return value instanceof Promise;
}

export interface Controller {
  authenticate(ctx: CallContext): Awaitable<ConnectResult>;
  subscribe(ctx: CallContext, identifier: string, istate: Readonly<Record<string, string>>): Awaitable<CommandResult>;
  unsubscribe(ctx: CallContext, identifier: string, istate: Readonly<Record<string, string>>): Awaitable<CommandResult>;
  perform(ctx: CallContext, identifier: string, data: string, istate: Readonly<Record<string, string>>): Awaitable<CommandResult>;
  disconnect(ctx: DisconnectContext): Promise<void>;
  shutdown(): Promise<void>;
}

export function commandResult(status: Status, fields: Partial<Omit<CommandResult, 'status'>> = {}): CommandResult {
  return { status, transmissions: [], streams: [], stopStreams: false, stoppedStreams: [], disconnect: false, usedRpc: false, ...fields };
}
