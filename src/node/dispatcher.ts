import type { Logger } from '../logging/logger.js';
import { compact } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Publication } from '../broadcast/message.js';
import { CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, PROTOCOL_EXT_JSON, rejectFrame } from '../protocol/messages.js';
import { presenceErrorFrame, rejectHistoryFrame } from '../protocol/ext-frames.js';
import type { HistoryServer } from '../reliable/history-server.js';
import type { SessionKeeper } from '../reliable/session-keeper.js';
import type { HistoryRequest } from '../reliable/history-request.js';
import { WHISPER_STATE_KEY } from '../streams/streams-controller.js';
import { errorMessage } from '../errors.js';
import { CancelledError, commandResult, type CommandResult, type Controller } from './controller.js';
import type { ChannelCommand, Session, SessionCall } from './session.js';

export interface DispatcherDeps {
  readonly controller: Controller;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Where whispers go: the same path as app broadcasts, so they reach every node. */
  readonly publish: (pub: Publication) => void;
  /** History and session recovery; null without a broker (history requests get reject_history). */
  readonly reliable?: ReliableStreams | null;
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

  run(session: Session, call: SessionCall): Promise<void> {
    if (call.kind === 'authenticate') return this.authenticate(session);
    return this.command(session, call.command);
  }

  /** Counts and (at debug) logs a client frame that is ignored. */
  dropFrame(session: Session, why: string): void {
    this.deps.metrics.counters.failed_client_msg_total++;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ sid: session.sid, why }, 'client frame dropped');
  }

  /** The session keeper when this session can be restored later (ext-json with a session store). */
  private keeper(session: Session): SessionKeeper | null {
    return session.request.protocol === PROTOCOL_EXT_JSON ? this.deps.reliable?.sessions ?? null : null;
  }

  private async authenticate(session: Session): Promise<void> {
    const keeper = this.keeper(session);
    // A restored session skips Connect (as anycable-go); a miss falls through to normal authentication.
    if (keeper !== null && session.request.restoreSid !== '' && await keeper.restore(session, session.request.restoreSid)) return;
    let result;
    try {
      result = await this.deps.controller.authenticate(session);
    } catch (err) {
      if (!(err instanceof CancelledError)) this.log.warn({ sid: session.sid, err: errorMessage(err) }, 'authentication error');
      session.close(CLOSE_INTERNAL_ERROR);
      return;
    }
    if (result.usedRpc) session.usedRpc = true;
    if (result.cstate) session.patchConnectionState(result.cstate);
    if (result.status === 'success') {
      session.cork(() => {
        // False when the client left meanwhile: the identity is kept so the app hears Disconnect.
        if (!session.authenticated(result.identifiers)) return;
        session.sendAll(result.transmissions);
        keeper?.commit(session);
        if (this.log.isLevelEnabled('debug')) this.log.debug({ sid: session.sid, identifiers: compact(result.identifiers) }, 'connected');
      });
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
    session.cork(() => {
      session.sendAll(result.transmissions);
      session.close(CLOSE_NORMAL);
    });
  }

  private async command(session: Session, command: ChannelCommand): Promise<void> {
    // Queued behind a Connect that failed, or behind the close: nothing to do.
    if (session.state !== 'open') return;
    const identifier = command.identifier;
    switch (command.command) {
      case 'subscribe':
        return this.subscribe(session, identifier, command.history ?? null);
      case 'unsubscribe':
        return this.unsubscribe(session, identifier);
      case 'message':
        return this.perform(session, identifier, command.data);
      case 'history':
        return this.history(session, identifier, command.history);
      case 'presence':
      case 'join':
      case 'leave':
        // No presence store yet: an error answer, so the client's presence request settles.
        session.send(presenceErrorFrame(identifier));
        return;
      case 'whisper': {
        const sub = session.subscription(identifier);
        if (!sub) return this.dropFrame(session, 'unknown subscription');
        const stream = sub.istate[WHISPER_STATE_KEY];
        if (!stream) return this.dropFrame(session, 'whisper is not enabled for this subscription');
        this.deps.publish({ kind: 'broadcast', stream, data: JSON.stringify(command.data ?? null), excludeSocket: session.sid, transient: true });
        return;
      }
    }
  }

  private async subscribe(session: Session, identifier: string, history: HistoryRequest | null): Promise<void> {
    if (session.subscription(identifier)) return this.dropFrame(session, 'already subscribed');
    let result: CommandResult;
    try {
      result = await this.deps.controller.subscribe(session, identifier, {});
    } catch (err) {
      // Never sent (the client left while it waited for a slot): nothing to record or unwind.
      if (err instanceof CancelledError) return;
      result = commandResult('error', { errorMsg: errorMessage(err) });
    }
    if (result.status === 'error') {
      // anycable-go sends nothing here and the client hangs; a reject lets it move on.
      this.log.warn({ sid: session.sid, identifier: compact(identifier), err: result.errorMsg ?? '' }, 'subscribe error');
      session.cork(() => session.send(rejectFrame(identifier)));
      return;
    }
    if (result.usedRpc) session.usedRpc = true;
    if (result.status === 'failure' && result.usedRpc) this.log.info({ sid: session.sid, identifier: compact(identifier) }, 'subscription rejected by the app (RPC)');
    let confirmed = false;
    session.cork(() => {
      confirmed = result.status === 'success' && session.confirmSubscription(identifier);
      this.apply(session, identifier, confirmed, result);
    });
    if (!confirmed || session.state !== 'open') return;
    this.keeper(session)?.commit(session);
    // History asked with the subscribe comes after the confirmation, for the streams it started.
    if (history !== null) await this.history(session, identifier, history);
  }

  private async history(session: Session, identifier: string, request: HistoryRequest | null): Promise<void> {
    const reliable = this.deps.reliable;
    if (reliable) await reliable.history.serve(session, identifier, request);
    else session.send(rejectHistoryFrame(identifier));
  }

  private async unsubscribe(session: Session, identifier: string): Promise<void> {
    const sub = session.subscription(identifier);
    if (!sub) return this.dropFrame(session, 'unknown subscription');
    let result: CommandResult | null = null;
    try {
      result = await this.deps.controller.unsubscribe(session, identifier, sub.istate);
    } catch (err) {
      // Never sent: the subscription stays recorded, so Disconnect lists it and the app cleans up there.
      if (err instanceof CancelledError) return;
      this.log.warn({ sid: session.sid, err: errorMessage(err) }, 'unsubscribe error');
    }
    session.cork(() => {
      // Whatever the app said, the client is gone from this channel: its streams and state go.
      session.removeSubscription(identifier);
      if (result && result.status !== 'error') this.apply(session, identifier, false, result);
    });
    if (session.state === 'open') this.keeper(session)?.commit(session);
  }

  private async perform(session: Session, identifier: string, data: string): Promise<void> {
    const sub = session.subscription(identifier);
    if (!sub) return this.dropFrame(session, 'unknown subscription');
    let result: CommandResult;
    try {
      result = await this.deps.controller.perform(session, identifier, data, sub.istate);
    } catch (err) {
      if (!(err instanceof CancelledError)) this.log.warn({ sid: session.sid, err: errorMessage(err) }, 'perform error');
      return;
    }
    if (result.status === 'error') {
      this.log.warn({ sid: session.sid, err: result.errorMsg ?? '' }, 'perform error');
      return;
    }
    session.cork(() => this.apply(session, identifier, session.subscription(identifier) !== undefined, result));
    const changed = result.streams.length > 0 || result.stopStreams || result.stoppedStreams.length > 0 || result.istate !== undefined || result.cstate !== undefined;
    if (changed && session.state === 'open') this.keeper(session)?.commit(session);
  }

  /**
   * Applies a command result in anycable-go's order: stop streams, start streams, channel state,
   * connection state, transmissions, disconnect. `channel` says whether the result may touch the
   * subscription (a confirmed one); the session ignores stream changes once the transport is gone.
   */
  private apply(session: Session, identifier: string, channel: boolean, result: CommandResult): void {
    if (channel && result.status === 'success') {
      if (result.stopStreams) session.stopStreams(identifier, null);
      else if (result.stoppedStreams.length > 0) session.stopStreams(identifier, result.stoppedStreams);
      if (result.streams.length > 0) session.startStreams(identifier, result.streams);
      if (result.istate) session.patchChannelState(identifier, result.istate);
    }
    if (result.cstate) session.patchConnectionState(result.cstate);
    session.sendAll(result.transmissions);
    if (result.disconnect) session.close(CLOSE_NORMAL);
  }
}
