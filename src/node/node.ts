import type { Logger } from '../logging/logger.js';
import { compact } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Hub, TopicPublisher } from '../hub/hub.js';
import type { Publication } from '../broadcast/message.js';
import { decodeClientFrame, type ClientCommand } from '../protocol/decoder.js';
import {
  CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_TOO_BIG,
  PONG_FRAME, disconnectFrame, pingFrame, rejectFrame,
} from '../protocol/messages.js';
import { WHISPER_STATE_KEY } from '../streams/streams-controller.js';
import { errorMessage } from '../errors.js';
import { commandResult, type CommandResult, type Controller, type DisconnectContext } from './controller.js';
import type { DisconnectMode } from '../config/config.js';
import type { DisconnectQueue } from './disconnect-queue.js';
import { Session, type Subscription } from './session.js';

export const PING_TOPIC = '$ping';
/** Granularity of pings and of the slow-consumer sweep. */
const TICK_MS = 250;
/** Disconnect calls run after the connection is gone: nothing cancels them. */
const NEVER_ABORTED = new AbortController().signal;

export interface NodeOptions {
  readonly pingIntervalS: number;
  readonly maxMessageSize: number;
  readonly maxPendingBytes: number;
  readonly disconnectMode: DisconnectMode;
}

export interface NodeDeps {
  readonly controller: Controller;
  readonly hub: Hub;
  readonly publisher: TopicPublisher;
  readonly disconnectQueue: DisconnectQueue;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Where whispers go: the same path as app broadcasts, so they reach every node. */
  readonly publish: (pub: Publication) => void;
}

/**
 * Session lifecycle and command dispatch: authenticates through the controller chain, runs
 * commands in order per session, applies results (streams, state, transmissions, disconnect),
 * and owns the shared timer for pings and slow-consumer checks.
 */
export class Node {
  private readonly sessions = new Set<Session>();
  private readonly bySid = new Map<string, Session>();
  private readonly byIdentifiers = new Map<string, Set<Session>>();
  private readonly customPing = new Set<Session>();
  private pingSubscribers = 0;
  private ticker: NodeJS.Timeout | undefined;
  private nextSharedPingAt = 0;
  private readonly log: Logger;

  constructor(private readonly opts: NodeOptions, private readonly deps: NodeDeps) {
    this.log = deps.logger.child({ component: 'node' });
    deps.metrics.registerGauge('clients_num', () => this.sessions.size);
    deps.metrics.registerGauge('clients_uniq_num', () => this.byIdentifiers.size);
  }

  get size(): number {
    return this.sessions.size;
  }

  start(): void {
    this.nextSharedPingAt = Date.now() + this.opts.pingIntervalS * 1000;
    // One timer for every connection: pings, per-connection ?pi= pings and slow-consumer checks.
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
  }

  // ---- lifecycle -------------------------------------------------------------------------

  onOpen(session: Session): void {
    this.sessions.add(session);
    this.bySid.set(session.sid, session);
    session.enqueue(() => this.authenticate(session), (err) => this.onTaskError(session, err));
  }

  private async authenticate(session: Session): Promise<void> {
    let result;
    try {
      result = await this.deps.controller.authenticate(session);
    } catch (err) {
      this.log.warn({ sid: session.sid, err: errorMessage(err) }, 'authentication error');
      session.close(CLOSE_INTERNAL_ERROR);
      return;
    }
    if (result.usedRpc) session.usedRpc = true;
    if (result.cstate) mergeState(session.cstate, result.cstate);
    if (!session.isOpen) {
      // The client left while we were asking the app: let the app forget it too.
      if (result.status === 'success' && result.usedRpc) {
        session.identifiers = result.identifiers;
        this.enqueueDisconnect(session);
      }
      return;
    }
    if (result.status === 'error') {
      this.log.warn({ sid: session.sid, err: result.errorMsg ?? '' }, 'authentication error');
      session.close(CLOSE_INTERNAL_ERROR);
      return;
    }
    if (result.status === 'failure') {
      this.deps.metrics.counters.failed_auths_total++;
      this.log.info({ sid: session.sid, reason: result.reason ?? 'rejected by the app' }, 'authentication failed');
      this.sendAll(session, result.transmissions);
      session.close(CLOSE_NORMAL);
      return;
    }
    session.identifiers = result.identifiers;
    session.state = 'connected';
    this.indexIdentifiers(session);
    this.sendAll(session, result.transmissions);
    if (session.customPingS === null) {
      session.socket?.subscribe(PING_TOPIC);
      session.onSharedPing = true;
      this.pingSubscribers++;
    } else if (session.customPingS > 0) {
      session.nextPingAt = Date.now() + session.customPingS * 1000;
      this.customPing.add(session);
    }
    if (this.log.isLevelEnabled('debug')) this.log.debug({ sid: session.sid, identifiers: compact(result.identifiers) }, 'connected');
  }

  onMessage(session: Session, message: ArrayBuffer, isBinary: boolean): void {
    const counters = this.deps.metrics.counters;
    counters.client_msg_total++;
    counters.data_rcvd_total += message.byteLength;
    if (message.byteLength > this.opts.maxMessageSize) {
      counters.failed_client_msg_total++;
      this.log.info({ sid: session.sid, size: message.byteLength }, 'frame too large, closing');
      session.close(CLOSE_TOO_BIG);
      return;
    }
    if (isBinary) {
      this.dropFrame(session, 'binary frame on a JSON protocol');
      return;
    }
    // Decoding copies the bytes: the ArrayBuffer is neutered when this callback returns.
    const decoded = decodeClientFrame(Buffer.from(message).toString('utf8'));
    if (!decoded.ok) {
      this.dropFrame(session, decoded.value.detail);
      return;
    }
    const command = decoded.value;
    if (command.command === 'ping') {
      this.send(session, PONG_FRAME);
      return;
    }
    if (command.command === 'pong') return;
    const queued = session.enqueue(() => this.handleCommand(session, command), (err) => this.onTaskError(session, err));
    if (!queued) this.dropFrame(session, 'too many commands waiting');
  }

  onClose(session: Session): void {
    const wasConnected = session.state === 'connected';
    session.markClosed();
    this.sessions.delete(session);
    this.bySid.delete(session.sid);
    this.customPing.delete(session);
    if (session.onSharedPing) this.pingSubscribers--;
    if (!wasConnected) return;
    this.unindexIdentifiers(session);
    for (const [identifier, sub] of session.subscriptions) {
      for (const stream of sub.streams) this.deps.hub.unsubscribe(null, stream, identifier);
    }
    this.enqueueDisconnect(session);
  }

  private enqueueDisconnect(session: Session): void {
    const mode = this.opts.disconnectMode;
    if (mode === 'never' || (mode === 'auto' && !session.usedRpc)) return;
    const istates: Record<string, string> = {};
    for (const [identifier, sub] of session.subscriptions) istates[identifier] = JSON.stringify(sub.istate);
    const ctx: DisconnectContext = {
      sid: session.sid,
      request: session.request,
      identifiers: session.identifiers,
      cstate: { ...session.cstate },
      signal: NEVER_ABORTED,
      subscriptions: [...session.subscriptions.keys()],
      istates,
    };
    this.deps.disconnectQueue.enqueue(ctx);
  }

  // ---- commands ---------------------------------------------------------------------------

  private async handleCommand(session: Session, command: Exclude<ClientCommand, { command: 'ping' | 'pong' }>): Promise<void> {
    if (session.state !== 'connected') return;
    const { controller } = this.deps;
    const identifier = command.identifier;
    const sub = session.subscription(identifier);
    switch (command.command) {
      case 'subscribe': {
        if (sub) return this.dropFrame(session, 'already subscribed');
        let result: CommandResult;
        try {
          result = await controller.subscribe(session, identifier, {});
        } catch (err) {
          result = commandResult('error', { errorMsg: errorMessage(err) });
        }
        if (result.status === 'error') {
          // anycable-go sends nothing here and the client hangs; a reject lets it move on.
          this.log.warn({ sid: session.sid, identifier: compact(identifier), err: result.errorMsg ?? '' }, 'subscribe error');
          this.send(session, rejectFrame(identifier));
          return;
        }
        if (result.usedRpc) session.usedRpc = true;
        const created: Subscription | undefined = result.status === 'success' ? { istate: {}, streams: new Set() } : undefined;
        if (created && session.isOpen) session.addSubscription(identifier, created);
        this.applyResult(session, identifier, created, result);
        return;
      }
      case 'unsubscribe': {
        if (!sub) return this.dropFrame(session, 'unknown subscription');
        let result: CommandResult | null = null;
        try {
          result = await controller.unsubscribe(session, identifier, sub.istate);
        } catch (err) {
          this.log.warn({ sid: session.sid, err: errorMessage(err) }, 'unsubscribe error');
        }
        // Whatever the app said, the client is gone from this channel: drop its streams and state.
        this.stopStreams(session, identifier, sub, [...sub.streams]);
        session.removeSubscription(identifier);
        if (result && result.status !== 'error') this.applyResult(session, identifier, undefined, result);
        return;
      }
      case 'message': {
        if (!sub) return this.dropFrame(session, 'unknown subscription');
        let result: CommandResult;
        try {
          result = await controller.perform(session, identifier, command.data, sub.istate);
        } catch (err) {
          this.log.warn({ sid: session.sid, err: errorMessage(err) }, 'perform error');
          return;
        }
        if (result.status === 'error') {
          this.log.warn({ sid: session.sid, err: result.errorMsg ?? '' }, 'perform error');
          return;
        }
        this.applyResult(session, identifier, session.subscription(identifier), result);
        return;
      }
      case 'whisper': {
        if (!sub) return this.dropFrame(session, 'unknown subscription');
        const stream = sub.istate[WHISPER_STATE_KEY];
        if (!stream) return this.dropFrame(session, 'whisper is not enabled for this subscription');
        this.deps.publish({ kind: 'broadcast', stream, data: JSON.stringify(command.data ?? null), excludeSocket: session.sid });
        return;
      }
    }
  }

  /** Applies a command result in anycable-go's order: stop streams, start streams, state, transmissions, disconnect. */
  private applyResult(session: Session, identifier: string, sub: Subscription | undefined, result: CommandResult): void {
    if (sub && result.status === 'success' && session.isOpen) {
      if (result.stopStreams) this.stopStreams(session, identifier, sub, [...sub.streams]);
      else if (result.stoppedStreams.length > 0) this.stopStreams(session, identifier, sub, result.stoppedStreams);
      for (const stream of result.streams) {
        if (sub.streams.has(stream) || session.socket === null) continue;
        sub.streams.add(stream);
        this.deps.hub.subscribe(session.socket, stream, identifier);
      }
      if (result.istate) mergeState(sub.istate, result.istate);
    }
    if (result.cstate) mergeState(session.cstate, result.cstate);
    this.sendAll(session, result.transmissions);
    if (result.disconnect) session.close(CLOSE_NORMAL);
  }

  private stopStreams(session: Session, identifier: string, sub: Subscription, streams: readonly string[]): void {
    for (const stream of streams) {
      if (!sub.streams.delete(stream)) continue;
      this.deps.hub.unsubscribe(session.socket, stream, identifier);
    }
  }

  // ---- delivery ---------------------------------------------------------------------------

  /** Delivers a publication to this node's clients. */
  deliver(pub: Publication): void {
    if (pub.kind === 'broadcast') {
      const excluded = pub.excludeSocket ? this.bySid.get(pub.excludeSocket)?.socket ?? null : null;
      this.deps.hub.broadcast(pub.stream, pub.data, excluded);
      return;
    }
    this.disconnectByIdentifiers(pub.identifier, pub.reconnect);
  }

  /** Closes every connection with these identifiers (anycable-go 1.6.16 closes only the first). */
  private disconnectByIdentifiers(identifiers: string, reconnect: boolean): void {
    const matches = this.byIdentifiers.get(identifiers);
    if (!matches) return;
    const frame = disconnectFrame('remote', reconnect);
    // Copy: each close removes the session from `matches` through onClose.
    const targets = [...matches];
    for (const session of targets) this.closeWith(session, CLOSE_NORMAL, frame);
    this.log.info({ count: targets.length }, 'remote disconnect');
  }

  // ---- timers -----------------------------------------------------------------------------

  private tick(): void {
    const now = Date.now();
    if (now >= this.nextSharedPingAt) {
      this.nextSharedPingAt = now + this.opts.pingIntervalS * 1000;
      const frame = pingFrame(Math.floor(now / 1000));
      this.deps.publisher.publish(PING_TOPIC, frame);
      this.deps.metrics.counters.server_msg_total += this.pingSubscribers;
      this.deps.metrics.counters.data_sent_total += this.pingSubscribers * frame.length;
    }
    for (const session of this.customPing) {
      if (now < session.nextPingAt || session.customPingS === null) continue;
      session.nextPingAt = now + session.customPingS * 1000;
      this.send(session, pingFrame(Math.floor(now / 1000)));
    }
    this.evictSlowConsumers();
  }

  /** uWS skips sockets over maxBackpressure silently; we tell them and close them. */
  private evictSlowConsumers(): void {
    const limit = this.opts.maxPendingBytes;
    for (const session of this.sessions) {
      const socket = session.socket;
      if (socket === null || session.closing || socket.getBufferedAmount() <= limit) continue;
      this.deps.metrics.counters.disconnected_slow_clients_total++;
      this.log.info({ sid: session.sid, buffered: socket.getBufferedAmount() }, 'slow client disconnected');
      this.closeWith(session, CLOSE_NORMAL, disconnectFrame('too_slow', true));
    }
  }

  // ---- helpers ----------------------------------------------------------------------------

  /** Every frame the node sends one by one goes through here, so the counters see all of them. */
  private send(session: Session, frame: string): void {
    if (!session.send(frame)) return;
    this.deps.metrics.counters.server_msg_total++;
    this.deps.metrics.counters.data_sent_total += Buffer.byteLength(frame);
  }

  private sendAll(session: Session, frames: readonly string[]): void {
    for (const frame of frames) this.send(session, frame);
  }

  /** A last frame (disconnect reason), then the close. */
  private closeWith(session: Session, code: number, frame: string): void {
    this.send(session, frame);
    session.close(code);
  }

  private dropFrame(session: Session, why: string): void {
    this.deps.metrics.counters.failed_client_msg_total++;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ sid: session.sid, why }, 'client frame dropped');
  }

  private onTaskError(session: Session, err: unknown): void {
    this.log.error({ sid: session.sid, err: errorMessage(err) }, 'command failed');
  }

  private indexIdentifiers(session: Session): void {
    let set = this.byIdentifiers.get(session.identifiers);
    if (!set) {
      set = new Set();
      this.byIdentifiers.set(session.identifiers, set);
    }
    set.add(session);
  }

  private unindexIdentifiers(session: Session): void {
    const set = this.byIdentifiers.get(session.identifiers);
    if (!set) return;
    set.delete(session);
    if (set.size === 0) this.byIdentifiers.delete(session.identifiers);
  }

  /** Tells every client to come back later and closes it with 1001. */
  disconnectAll(): void {
    if (this.ticker) clearInterval(this.ticker);
    const frame = disconnectFrame('server_restart', true);
    for (const session of [...this.sessions]) {
      // Connections still authenticating get no frame: they never had a welcome.
      if (session.state === 'connected') this.closeWith(session, CLOSE_GOING_AWAY, frame);
      else session.close(CLOSE_GOING_AWAY);
    }
  }
}

/** Merges a state patch: an empty value deletes the key (the RPC contract). */
function mergeState(target: Record<string, string>, patch: Readonly<Record<string, string>>): void {
  for (const [key, value] of Object.entries(patch)) {
    if (value === '') delete target[key];
    else target[key] = value;
  }
}
