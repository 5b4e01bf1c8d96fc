import type { Logger } from '../logging/logger.js';
import { RateLimitedLog } from '../logging/rate-limited.js';
import type { Metrics } from '../metrics/metrics.js';
import type { StreamBroadcast } from '../broadcast/message.js';
import { errorMessage } from '../errors.js';
import { PRESENCE_STATE_KEY } from '../streams/streams-controller.js';
import type { PresenceKey, PresenceStore } from './presence-store.js';
import { joinEventJson, leaveEventJson, presenceInfoFrame } from './presence-frames.js';
import type { JoinRequest } from './join-request.js';
import type { PresenceAction } from '../node/controller.js';
import type { SessionState } from '../node/session.js';
import { presenceErrorFrame } from '../protocol/ext-frames.js';

/** How often expired presences are swept (anycable-go: every second). */
const EXPIRE_INTERVAL_MS = 1000;

/** The slice of a session presence works with. */
export interface PresenceSession {
  readonly sid: string;
  /** Only an open session is kept present; a closing one's presence runs out after the TTL. */
  readonly state: SessionState;
  subscription(identifier: string): { readonly istate: Readonly<Record<string, string>> } | undefined;
  send(frame: string): boolean;
}

export type PresenceOutcome =
  | 'ok'
  /** Why nothing happened: a client's command is then counted as failed and logged at debug. */
  | 'unknown_subscription' | 'not_enabled' | 'no_store' | 'id_mismatch' | 'store_error';

export interface PresenceOptions {
  readonly ttlS: number;
}

/**
 * Presence on this node: runs join/leave/info against the store, publishes join and leave events on
 * the broadcast path (so every node's subscribers get them, the joiner too), keeps the presences of
 * live sessions fresh, and sweeps expired ones. A closed session is not kept: its presence leaves
 * once the TTL passes, unless the client came back and joined again meanwhile.
 */
export class PresenceService {
  /** sid → identifier → presence stream, for open sessions that joined. */
  private readonly live = new Map<string, Map<string, string>>();
  private expireTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  /** Settles after the answers of every store call made so far were handled (see inOrder). */
  private answered: Promise<void> = Promise.resolve();
  private readonly log: Logger;
  private readonly quiet: RateLimitedLog;

  constructor(
    private readonly store: PresenceStore | null,
    private readonly opts: PresenceOptions,
    private readonly publish: (pub: StreamBroadcast) => void,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'presence' });
    this.quiet = new RateLimitedLog(this.log);
  }

  start(): void {
    if (this.store === null) return;
    this.expireTimer = setInterval(() => void this.sweep(), EXPIRE_INTERVAL_MS);
    this.expireTimer.unref();
    // Live presences are refreshed at half the TTL, so one late refresh never lets them expire.
    this.refreshTimer = setInterval(() => void this.refresh(), Math.max(500, (this.opts.ttlS * 1000) / 2));
    this.refreshTimer.unref();
  }

  stop(): void {
    clearInterval(this.expireTimer);
    clearInterval(this.refreshTimer);
  }

  /** The presence stream of a subscription, or why there is none. */
  private streamOf(session: PresenceSession, identifier: string): { stream: string; store: PresenceStore } | { why: PresenceOutcome } {
    const sub = session.subscription(identifier);
    if (!sub) return { why: 'unknown_subscription' };
    const stream = sub.istate[PRESENCE_STATE_KEY];
    if (!stream) return { why: 'not_enabled' };
    if (this.store === null) return { why: 'no_store' };
    return { stream, store: this.store };
  }

  private async tryJoin(session: PresenceSession, identifier: string, request: JoinRequest): Promise<PresenceOutcome> {
    const target = this.streamOf(session, identifier);
    if ('why' in target) return target.why;
    let outcome;
    try {
      outcome = await this.inOrder(target.store.join(target.stream, session.sid, request.id, request.info));
    } catch (err) {
      return this.storeError('join', err);
    }
    if (!outcome.ok) return 'id_mismatch';
    // A session that closed meanwhile is not kept: its presence runs out after the TTL.
    if (session.state === 'open') {
      let joined = this.live.get(session.sid);
      if (!joined) this.live.set(session.sid, joined = new Map());
      joined.set(identifier, target.stream);
    }
    if (outcome.joined) this.emit(target.stream, joinEventJson(request.id, request.info));
    return 'ok';
  }

  private async tryLeave(session: PresenceSession, identifier: string): Promise<PresenceOutcome> {
    const joined = this.live.get(session.sid);
    const tracked = joined?.get(identifier);
    let stream = tracked;
    if (stream === undefined) {
      const target = this.streamOf(session, identifier);
      if ('why' in target) return target.why;
      stream = target.stream;
    }
    joined?.delete(identifier);
    if (joined?.size === 0) this.live.delete(session.sid);
    if (this.store === null) return 'no_store';
    // The store keeps one presence per (stream, session): while another subscription of this session is
    // present on the stream, that presence stays (leaving one channel must not take the other's with it).
    if (joined !== undefined && tracked !== undefined && mapHasValue(joined, stream)) return 'ok';
    let left;
    try {
      left = await this.inOrder(this.store.leave(stream, session.sid));
    } catch (err) {
      return this.storeError('leave', err);
    }
    if (left !== null) this.emit(stream, leaveEventJson(left));
    return 'ok';
  }

  /** The client left the channel: its presence there goes at once (anycable-go does the same). */
  unsubscribed(session: PresenceSession, identifier: string): Promise<void> | undefined {
    // Most subscriptions never joined: no promise for them.
    if (!this.live.get(session.sid)?.has(identifier)) return undefined;
    return this.tryLeave(session, identifier).then(() => undefined);
  }

  private async tryInfo(session: PresenceSession, identifier: string): Promise<PresenceOutcome> {
    const target = this.streamOf(session, identifier);
    if ('why' in target) return target.why;
    let snapshot;
    try {
      snapshot = await target.store.info(target.stream);
    } catch (err) {
      return this.storeError('info', err);
    }
    session.send(presenceInfoFrame(identifier, snapshot));
    return 'ok';
  }

  /** A client's `join`. Refused ones are dropped and counted, as anycable-go (the client expects no answer). */
  async join(session: PresenceSession, identifier: string, request: JoinRequest): Promise<void> {
    this.refused(session, identifier, 'join', await this.tryJoin(session, identifier, request));
  }

  /** A client's `leave`. */
  async leave(session: PresenceSession, identifier: string): Promise<void> {
    this.refused(session, identifier, 'leave', await this.tryLeave(session, identifier));
  }

  /** A client's `presence` request: the members, or an error answer so the client's request settles. */
  async info(session: PresenceSession, identifier: string): Promise<void> {
    const outcome = await this.tryInfo(session, identifier);
    if (outcome === 'ok') return;
    this.refused(session, identifier, 'presence', outcome);
    session.send(presenceErrorFrame(identifier));
  }

  /** CommandResponse.presence, applied after the rest of the app's answer (so a $p it set counts). */
  async apply(session: PresenceSession, identifier: string, action: PresenceAction): Promise<void> {
    const outcome = action.type === 'join'
      ? await this.tryJoin(session, identifier, { id: action.id, info: action.info })
      : await this.tryLeave(session, identifier);
    if (outcome !== 'ok' && outcome !== 'store_error') {
      this.log.warn({ sid: session.sid, identifier, action: action.type, reason: outcome }, 'presence from the app not applied');
    }
  }

  /** Counts a refused client command and says why at debug (store errors are logged where they happen). */
  private refused(session: PresenceSession, identifier: string, command: string, outcome: PresenceOutcome): void {
    if (outcome === 'ok') return;
    this.metrics.counters.failed_client_msg_total++;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ sid: session.sid, identifier, command, reason: outcome }, 'presence command refused');
  }

  /** The transport is gone: this session's presences are no longer refreshed and leave after the TTL. */
  sessionClosed(sid: string): void {
    const joined = this.live.get(sid);
    if (!joined || this.store === null) return;
    this.live.delete(sid);
    // The TTL counts from now, not from the last refresh.
    this.store.touch(keysOf(sid, joined)).catch((err: unknown) => this.storeError('touch', err));
  }

  /** Presences this node keeps fresh (tests and diagnostics). */
  get liveCount(): number {
    let n = 0;
    for (const joined of this.live.values()) n += joined.size;
    return n;
  }

  /** Keeps every live presence of this node for another TTL (the timer runs it every TTL/2). */
  async refresh(): Promise<void> {
    if (this.store === null || this.live.size === 0) return;
    const keys: PresenceKey[] = [];
    for (const [sid, joined] of this.live) keys.push(...keysOf(sid, joined));
    try {
      await this.store.touch(keys);
    } catch (err) {
      this.storeError('touch', err);
    }
  }

  /** Drops expired presences and publishes their leaves (the timer runs it every second). */
  async sweep(): Promise<void> {
    if (this.store === null || this.sweeping) return;
    this.sweeping = true;
    try {
      for (const leave of await this.inOrder(this.store.expire())) this.emit(leave.stream, leaveEventJson(leave.id));
    } catch (err) {
      this.storeError('expire', err);
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * The store's answer, handed over only after the answers of earlier calls: events then leave this
   * node in the order the store decided them (a leave and the re-join after it never swap), even when
   * answers come back out of order (NATS requests, timeouts). Calls still run concurrently.
   */
  private inOrder<T>(call: Promise<T>): Promise<T> {
    // A call may fail at once (store down) while an earlier one is pending: its rejection reaches the
    // caller through `answer` later, so it must not count as unhandled meanwhile (that ends the process).
    call.catch(() => undefined);
    const answer = this.answered.then(() => call);
    this.answered = answer.then(() => undefined, () => undefined);
    return answer;
  }

  /** Events are transient broadcasts: every node's subscribers get them, history never stores them. */
  private emit(stream: string, data: string): void {
    this.metrics.counters.presence_events_total++;
    this.publish({ kind: 'broadcast', stream, data, excludeSocket: null, transient: true, presence: true });
  }

  private storeError(op: string, err: unknown): 'store_error' {
    this.metrics.counters.presence_errors_total++;
    this.quiet.warn(op, { op, err: errorMessage(err) }, 'presence store call failed');
    return 'store_error';
  }
}

/** One key per stream: a session joined through two identifiers of one stream is one presence. */
function mapHasValue(map: ReadonlyMap<string, string>, value: string): boolean {
  for (const v of map.values()) if (v === value) return true;
  return false;
}

function keysOf(sid: string, joined: ReadonlyMap<string, string>): PresenceKey[] {
  return [...new Set(joined.values())].map((stream) => ({ stream, sid }));
}
