import type { Logger } from '../logging/logger.js';
import { compact } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Publication } from '../broadcast/message.js';
import { CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, PROTOCOL_EXT_JSON, rejectFrame } from '../protocol/messages.js';
import { presenceErrorFrame, rejectHistoryFrame } from '../protocol/ext-frames.js';
import type { HistoryServer } from '../reliable/history-server.js';
import type { SessionKeeper } from '../reliable/session-keeper.js';
import type { HistoryRequest } from '../reliable/history-request.js';
import type { PresenceService } from '../presence/presence-service.js';
import type { JoinRequest } from '../presence/join-request.js';
import { WHISPER_STATE_KEY } from '../streams/streams-controller.js';
import { errorMessage } from '../errors.js';
import { CancelledError, commandResult, isPromise, type Awaitable, type CommandResult, type ConnectResult, type Controller } from './controller.js';
import type { ChannelCommand, Pending, Session, SessionCall } from './session.js';

export interface DispatcherDeps {
  readonly controller: Controller;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Where whispers go: the same path as app broadcasts, so they reach every node. */
  readonly publish: (pub: Publication) => void;
  /** History and session recovery; null without a broker (history requests get reject_history). */
  readonly reliable?: ReliableStreams | null;
  /** join/leave/presence commands and the app's presence changes; absent = answered as unavailable. */
  readonly presence?: PresenceService | null;
}

export interface ReliableStreams {
  readonly history: HistoryServer;
  /** Null when sessions are not kept (sessions_ttl 0). */
  readonly sessions: SessionKeeper | null;
}

/**
 * Runs a session's calls against the controller chain and applies the answers through the session,
 * in anycable-go's order. Whatever state the session is in when an answer arrives, the session
 * decides what still applies (a closing session records a confirmed subscription but enters no stream).
 */
export class Dispatcher {
  private readonly log: Logger;

  constructor(private readonly deps: DispatcherDeps) {
    this.log = deps.logger.child({ component: 'node' });
  }

  /**
   * Runs one call. A layer that answers with a value (JWT, public, signed streams) is applied right here,
   * inside the socket callback, and the answer is `undefined`; an answer still to come is a promise.
   * Either way the call's effects are applied exactly once, in the same order.
   */
  run(session: Session, call: SessionCall): Pending {
    if (call.kind === 'authenticate') return this.authenticate(session);
    return this.command(session, call.command);
  }

  /** Counts and (at debug) logs a client frame that is ignored. */
  dropFrame(session: Session, why: string): undefined {
    this.deps.metrics.counters.failed_client_msg_total++;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ sid: session.sid, why }, 'client frame dropped');
    return undefined;
  }

  /** The session keeper when this session can be restored later (ext-json with a session store). */
  private keeper(session: Session): SessionKeeper | null {
    return session.request.protocol === PROTOCOL_EXT_JSON ? this.deps.reliable?.sessions ?? null : null;
  }

  private authenticate(session: Session): Pending {
    const keeper = this.keeper(session);
    // A restored session skips Connect (as anycable-go); a miss falls through to normal authentication.
    if (keeper !== null && session.request.restoreSid !== '') return this.restoreOrAuthenticate(session, keeper, session.request.restoreSid);
    return this.connect(session, keeper);
  }

  private async restoreOrAuthenticate(session: Session, keeper: SessionKeeper, sid: string): Promise<void> {
    if (await keeper.restore(session, sid)) return;
    await this.connect(session, keeper);
  }

  private connect(session: Session, keeper: SessionKeeper | null): Pending {
    let answer: Awaitable<ConnectResult>;
    try {
      answer = this.deps.controller.authenticate(session);
    } catch (err) {
      this.authenticationError(session, err);
      return undefined;
    }
    if (isPromise(answer)) return answer.then((result) => this.authenticated(session, keeper, result), (err: unknown) => this.authenticationError(session, err));
    this.authenticated(session, keeper, answer);
    return undefined;
  }

  private authenticationError(session: Session, err: unknown): void {
    if (!(err instanceof CancelledError)) this.log.warn({ sid: session.sid, err: errorMessage(err) }, 'authentication error');
    session.close(CLOSE_INTERNAL_ERROR);
  }

  private authenticated(session: Session, keeper: SessionKeeper | null, result: ConnectResult): void {
    if (result.usedRpc) session.usedRpc = true;
    if (result.cstate) session.patchConnectionState(result.cstate);
    if (result.status === 'success') {
      // No closure to cork when the transport batches the writes already (a uWS open callback).
      if (session.corked) this.welcome(session, keeper, result);
      else session.cork(() => this.welcome(session, keeper, result));
      return;
    }
    if (!session.isLive) return;
    if (result.status === 'error') {
      this.log.warn({ sid: session.sid, err: result.errorMsg ?? '' }, 'authentication error');
      session.close(CLOSE_INTERNAL_ERROR);
      return;
    }
    this.deps.metrics.counters.failed_auths_total++;
    this.log.info({ sid: session.sid, reason: result.reason ?? 'rejected by the app' }, 'authentication failed');
    this.applyCorked(session, () => {
      session.sendAll(result.transmissions);
      return true;
    });
  }

  private welcome(session: Session, keeper: SessionKeeper | null, result: ConnectResult): void {
    // False when the client left meanwhile: the identity is kept so the app hears Disconnect.
    if (!session.authenticated(result.identifiers)) return;
    session.sendAll(result.transmissions);
    keeper?.commit(session);
    if (this.log.isLevelEnabled('debug')) this.log.debug({ sid: session.sid, identifiers: compact(result.identifiers) }, 'connected');
  }

  private command(session: Session, command: ChannelCommand): Pending {
    // Queued behind a Connect that failed, or behind the close: nothing to do.
    if (session.state !== 'open') return undefined;
    const identifier = command.identifier;
    switch (command.command) {
      case 'subscribe':
        return this.subscribe(session, identifier, command.history ?? null, command.presence ?? null);
      case 'unsubscribe':
        return this.unsubscribe(session, identifier);
      case 'message':
        return this.perform(session, identifier, command.data);
      case 'history':
        return this.history(session, identifier, command.history);
      case 'join':
        return this.deps.presence ? this.deps.presence.join(session, identifier, command.presence) : this.dropFrame(session, 'presence is off');
      case 'leave':
        return this.deps.presence ? this.deps.presence.leave(session, identifier) : this.dropFrame(session, 'presence is off');
      case 'presence':
        if (this.deps.presence) return this.deps.presence.info(session, identifier);
        session.send(presenceErrorFrame(identifier));
        return undefined;
      case 'whisper': {
        const sub = session.subscription(identifier);
        if (!sub) return this.dropFrame(session, 'unknown subscription');
        const stream = sub.istate[WHISPER_STATE_KEY];
        if (!stream) return this.dropFrame(session, 'whisper is not enabled for this subscription');
        this.deps.publish({ kind: 'broadcast', stream, data: JSON.stringify(command.data ?? null), excludeSocket: session.sid, transient: true });
        return undefined;
      }
    }
  }

  private subscribe(session: Session, identifier: string, history: HistoryRequest | null, join: JoinRequest | null): Pending {
    if (session.subscription(identifier)) return this.dropFrame(session, 'already subscribed');
    let answer: Awaitable<CommandResult>;
    try {
      answer = this.deps.controller.subscribe(session, identifier, {});
    } catch (err) {
      return this.subscribeFailed(session, identifier, err);
    }
    if (isPromise(answer)) return answer.then((result) => this.subscribed(session, identifier, history, join, result), (err: unknown) => this.subscribeFailed(session, identifier, err));
    return this.subscribed(session, identifier, history, join, answer);
  }

  private subscribeFailed(session: Session, identifier: string, err: unknown): Pending {
    // Never sent (the client left while it waited for a slot): nothing to record or unwind.
    if (err instanceof CancelledError) return undefined;
    return this.subscribed(session, identifier, null, null, commandResult('error', { errorMsg: errorMessage(err) }));
  }

  private subscribed(session: Session, identifier: string, history: HistoryRequest | null, join: JoinRequest | null, result: CommandResult): Pending {
    if (result.status === 'error') {
      // anycable-go sends nothing here and the client hangs; a reject lets it move on.
      this.log.warn({ sid: session.sid, identifier: compact(identifier), err: result.errorMsg ?? '' }, 'subscribe error');
      session.cork(() => session.send(rejectFrame(identifier)));
      return undefined;
    }
    if (result.usedRpc) session.usedRpc = true;
    if (result.status === 'failure' && result.usedRpc) this.log.info({ sid: session.sid, identifier: compact(identifier) }, 'subscription rejected by the app (RPC)');
    const confirmed = result.status === 'success' && session.confirmSubscription(identifier);
    this.applyResult(session, identifier, confirmed, result);
    if (!confirmed || session.state !== 'open') return undefined;
    this.keeper(session)?.commit(session);
    if (!result.presence && join === null) {
      // History asked with the subscribe comes after the confirmation, for the streams it started.
      return history !== null ? this.history(session, identifier, history) : undefined;
    }
    return this.presenceAfterSubscribe(session, identifier, result, history, join);
  }

  /** The app's presence change, then the history asked with the subscribe, then a restoring client's join. */
  private async presenceAfterSubscribe(session: Session, identifier: string, result: CommandResult, history: HistoryRequest | null, join: JoinRequest | null): Promise<void> {
    await this.applyPresence(session, identifier, result);
    if (history !== null) await this.history(session, identifier, history);
    if (join !== null && session.state === 'open') await this.deps.presence?.join(session, identifier, join);
  }

  /** CommandResponse.presence of a successful command, once the rest of the answer is applied. */
  private applyPresence(session: Session, identifier: string, result: CommandResult): Pending {
    if (!result.presence || result.status !== 'success' || !this.deps.presence || !session.subscription(identifier)) return undefined;
    return this.deps.presence.apply(session, identifier, result.presence);
  }

  private history(session: Session, identifier: string, request: HistoryRequest | null): Pending {
    const reliable = this.deps.reliable;
    if (reliable) return reliable.history.serve(session, identifier, request);
    session.send(rejectHistoryFrame(identifier));
    return undefined;
  }

  private unsubscribe(session: Session, identifier: string): Pending {
    const sub = session.subscription(identifier);
    if (!sub) return this.dropFrame(session, 'unknown subscription');
    let answer: Awaitable<CommandResult>;
    try {
      answer = this.deps.controller.unsubscribe(session, identifier, sub.istate);
    } catch (err) {
      return this.unsubscribeFailed(session, identifier, err);
    }
    if (isPromise(answer)) return answer.then((result) => this.unsubscribed(session, identifier, result), (err: unknown) => this.unsubscribeFailed(session, identifier, err));
    return this.unsubscribed(session, identifier, answer);
  }

  private unsubscribeFailed(session: Session, identifier: string, err: unknown): Pending {
    // Never sent: the subscription stays recorded, so Disconnect lists it and the app cleans up there.
    if (err instanceof CancelledError) return undefined;
    this.log.warn({ sid: session.sid, err: errorMessage(err) }, 'unsubscribe error');
    return this.unsubscribed(session, identifier, null);
  }

  private unsubscribed(session: Session, identifier: string, result: CommandResult | null): Pending {
    // Its presence there goes at once; the session's next call waits for the leave.
    const left = this.deps.presence?.unsubscribed(session, identifier);
    this.applyCorked(session, () => {
      // Whatever the app said, the client is gone from this channel: its streams and state go.
      session.removeSubscription(identifier);
      return result !== null && result.status !== 'error' && this.apply(session, identifier, false, result);
    });
    if (session.state === 'open') this.keeper(session)?.commit(session);
    return left;
  }

  private perform(session: Session, identifier: string, data: string): Pending {
    const sub = session.subscription(identifier);
    if (!sub) return this.dropFrame(session, 'unknown subscription');
    let answer: Awaitable<CommandResult>;
    try {
      answer = this.deps.controller.perform(session, identifier, data, sub.istate);
    } catch (err) {
      return this.performFailed(session, err);
    }
    if (isPromise(answer)) return answer.then((result) => this.performed(session, identifier, result), (err: unknown) => this.performFailed(session, err));
    return this.performed(session, identifier, answer);
  }

  private performFailed(session: Session, err: unknown): undefined {
    if (!(err instanceof CancelledError)) this.log.warn({ sid: session.sid, err: errorMessage(err) }, 'perform error');
    return undefined;
  }

  private performed(session: Session, identifier: string, result: CommandResult): Pending {
    if (result.status === 'error') {
      this.log.warn({ sid: session.sid, err: result.errorMsg ?? '' }, 'perform error');
      return undefined;
    }
    this.applyResult(session, identifier, session.subscription(identifier) !== undefined, result);
    const changed = result.streams.length > 0 || result.stopStreams || result.stoppedStreams.length > 0 || result.istate !== undefined || result.cstate !== undefined;
    if (changed && session.state === 'open') this.keeper(session)?.commit(session);
    return this.applyPresence(session, identifier, result);
  }

  /** `apply` of a result, corked (no closure when the transport batches the writes already). */
  private applyResult(session: Session, identifier: string, channel: boolean, result: CommandResult): void {
    if (!session.corked) {
      this.applyCorked(session, () => this.apply(session, identifier, channel, result));
      return;
    }
    if (this.apply(session, identifier, channel, result)) session.close(CLOSE_NORMAL);
  }

  /**
   * Runs `apply` corked (after an await we are outside any uWS callback: each write would be its own
   * syscall) and closes in the same batch when the result asks to disconnect.
   */
  private applyCorked(session: Session, apply: () => boolean): void {
    session.cork(() => {
      if (apply()) session.close(CLOSE_NORMAL);
    });
  }

  /**
   * Applies a command result in anycable-go's order: stop streams, start streams, channel state,
   * connection state, transmissions; returns whether to disconnect. `channel` says whether the result
   * may touch the subscription (a confirmed one); the session ignores stream changes once the
   * transport is gone.
   */
  private apply(session: Session, identifier: string, channel: boolean, result: CommandResult): boolean {
    if (channel && result.status === 'success') {
      if (result.stopStreams) session.stopStreams(identifier, null);
      else if (result.stoppedStreams.length > 0) session.stopStreams(identifier, result.stoppedStreams);
      if (result.streams.length > 0) session.startStreams(identifier, result.streams);
      if (result.istate) session.patchChannelState(identifier, result.istate);
    }
    if (result.cstate) session.patchConnectionState(result.cstate);
    session.sendAll(result.transmissions);
    return result.disconnect;
  }
}
