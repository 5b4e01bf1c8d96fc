import type { Logger } from '../logging/logger.js';
import type { Hub } from '../hub/hub.js';
import type { Publication } from '../broadcast/message.js';
import { decodeClientFrame } from '../protocol/decoder.js';
import {
  CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_TOO_BIG, CLOSE_TRY_AGAIN_LATER, COMMAND_QUEUE_FULL_REASON,
  PONG_FRAME, disconnectFrame,
} from '../protocol/messages.js';
import { errorMessage } from '../errors.js';
import type { DisconnectContext, RequestInfo } from './controller.js';
import type { DisconnectMode } from '../config/config.js';
import { Session, type SessionCall, type SessionHost, type SessionSocket } from './session.js';
import { SessionRegistry, type IdentifierEvents } from './session-registry.js';
import type { ConnectionGate } from './connection-gate.js';
import { Dispatcher, type DispatcherDeps } from './dispatcher.js';
import type { CatchUp } from '../reliable/catch-up.js';
import { Liveness } from './liveness.js';

export interface NodeOptions {
  readonly pingIntervalS: number;
  readonly maxMessageSize: number;
  readonly maxPendingBytes: number;
  /** Bytes of commands a session may have waiting (--max_command_queue_size). */
  readonly maxCommandQueueSize: number;
  readonly disconnectMode: DisconnectMode;
  /** Seconds without any frame from an ext-json client before a no_pong disconnect (0 = off). */
  readonly pongTimeoutS?: number;
}

/** Where Disconnect calls go (the rate-limited queue). */
export interface DisconnectSink {
  enqueue(ctx: DisconnectContext): void;
}

/** What the dispatcher needs, and what the node itself wires: fan-out, catch-up, Disconnect calls. */
export interface NodeDeps extends DispatcherDeps {
  readonly hub: Hub;
  readonly disconnectQueue: DisconnectSink;
  /** Holds live messages of sessions catching up on history. */
  readonly catchUp?: CatchUp | null;
  /** --max_conn admission: every connection's close gives its place back. */
  readonly gate?: ConnectionGate | null;
  /** Told when connection identifiers appear and go (a worker thread's node counts clients_uniq_num across workers). */
  readonly identifierEvents?: IdentifierEvents | null;
}

/**
 * The node: where transports hand in sessions and frames, and where publications come out.
 * Sessions run their own lifecycle; the node wires them to the registry, the dispatcher,
 * liveness and the disconnect queue.
 */
export class Node {
  private readonly registry: SessionRegistry;
  private readonly dispatcher: Dispatcher;
  private readonly liveness: Liveness;
  /** Sessions whose transport is gone but whose last call is still running. */
  private readonly unwinding = new Set<Session>();
  private unwound: Array<() => void> = [];
  private readonly host: SessionHost;
  private readonly log: Logger;

  constructor(private readonly opts: NodeOptions, private readonly deps: NodeDeps) {
    this.log = deps.logger.child({ component: 'node' });
    this.registry = new SessionRegistry(deps.metrics, deps.identifierEvents ?? null);
    this.dispatcher = new Dispatcher(deps);
    this.liveness = new Liveness(opts, this.registry, deps.metrics, deps.logger);
    this.host = {
      hub: deps.hub,
      counters: deps.metrics.counters,
      corked: null,
      commandQueueBytes: opts.maxCommandQueueSize,
      run: (session: Session, call: SessionCall) => this.dispatcher.run(session, call),
      onCallError: (session: Session, err: unknown) => this.log.error({ sid: session.sid, err: errorMessage(err) }, 'command failed'),
      onOpened: (session: Session) => this.opened(session),
      onTransportClosed: (session: Session, wasOpen: boolean) => this.transportClosed(session, wasOpen),
      onClosed: (session: Session, identified: boolean) => this.closed(session, identified),
    };
  }

  get size(): number {
    return this.registry.size;
  }

  start(): void {
    this.liveness.start();
  }

  // ---- transport events -------------------------------------------------------------------

  /** A session for an accepted upgrade; it starts when its transport opens. */
  createSession(sid: string, request: RequestInfo, customPingS: number | null): Session {
    return new Session(sid, request, customPingS, this.host);
  }

  /** `corked`: the transport batches the writes made during this call (a uWS open callback does). */
  onOpen(session: Session, socket: SessionSocket, corked = false): void {
    this.registry.add(session);
    if (!corked) {
      session.attach(socket);
      return;
    }
    this.host.corked = session;
    try {
      session.attach(socket);
    } finally {
      this.host.corked = null;
    }
  }

  /** `corked`: the transport batches the writes made during this call (a uWS message callback does). */
  onMessage(session: Session, message: ArrayBuffer, isBinary: boolean, corked = false): void {
    if (!corked) {
      this.message(session, message, isBinary);
      return;
    }
    this.host.corked = session;
    try {
      this.message(session, message, isBinary);
    } finally {
      this.host.corked = null;
    }
  }

  private message(session: Session, message: ArrayBuffer, isBinary: boolean): void {
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
      this.dispatcher.dropFrame(session, 'binary frame on a JSON protocol');
      return;
    }
    // Decoding copies the bytes: the ArrayBuffer is neutered when this callback returns.
    const decoded = decodeClientFrame(Buffer.from(message).toString('utf8'));
    if (!decoded.ok) {
      this.dispatcher.dropFrame(session, decoded.value.detail);
      return;
    }
    const command = decoded.value;
    this.liveness.heard(session);
    if (command.command === 'ping') {
      session.send(PONG_FRAME);
      return;
    }
    if (command.command === 'pong') return;
    if (session.enqueue({ kind: 'command', command, bytes: message.byteLength }) === 'over_budget') {
      counters.disconnected_command_overflow_total++;
      this.log.warn({ sid: session.sid, limit: this.opts.maxCommandQueueSize }, 'command queue full, closing');
      session.close(CLOSE_TRY_AGAIN_LATER, COMMAND_QUEUE_FULL_REASON);
    }
  }

  onClose(session: Session): void {
    session.transportClosed();
  }

  // ---- session transitions ----------------------------------------------------------------

  private opened(session: Session): void {
    this.registry.identify(session);
    this.liveness.track(session);
  }

  private transportClosed(session: Session, wasOpen: boolean): void {
    this.registry.remove(session, wasOpen);
    this.deps.gate?.release();
    this.liveness.untrack(session);
    // Only a call still running delays the close; otherwise the session closes right after this.
    if (session.callRunning) this.unwinding.add(session);
    // The TTL of its snapshot counts from now, so the client has sessions_ttl to come back.
    if (wasOpen) this.deps.reliable?.sessions?.finish(session);
    this.deps.presence?.sessionClosed(session.sid);
  }

  private closed(session: Session, identified: boolean): void {
    if (this.unwinding.size > 0) this.unwinding.delete(session);
    if (identified) {
      const mode = this.opts.disconnectMode;
      if (mode === 'always' || (mode === 'auto' && session.usedRpc)) this.deps.disconnectQueue.enqueue(session.disconnectContext());
    }
    if (this.unwinding.size === 0 && this.unwound.length > 0) {
      for (const resolve of this.unwound.splice(0)) resolve();
    }
  }

  // ---- delivery ---------------------------------------------------------------------------

  /** Delivers a publication to this node's clients. */
  deliver(pub: Publication): void {
    if (pub.kind === 'broadcast') {
      if (pub.presence === true) {
        // Sessions catching up are out of the topic: their copy waits in the hold with their messages.
        this.deps.catchUp?.onPresence(pub.stream, pub.data);
        this.deps.hub.broadcastPresence(pub.stream, pub.data);
        return;
      }
      const excluded = pub.excludeSocket ? this.registry.get(pub.excludeSocket)?.liveSocket ?? null : null;
      const position = pub.position ?? null;
      // Sessions catching up on history get their copy buffered instead of through the topic.
      this.deps.catchUp?.onBroadcast(pub.stream, pub.data, position, pub.excludeSocket);
      this.deps.hub.broadcast(pub.stream, pub.data, excluded, position);
      this.liveness.afterDelivery();
      return;
    }
    this.disconnectByIdentifiers(pub.identifier, pub.reconnect);
  }

  /** Closes every connection with these identifiers (anycable-go 1.6.16 closes only the first). */
  private disconnectByIdentifiers(identifiers: string, reconnect: boolean): void {
    const targets = this.registry.withIdentifiers(identifiers);
    if (targets.length === 0) return;
    const frame = disconnectFrame('remote', reconnect);
    for (const session of targets) session.closeWith(CLOSE_NORMAL, frame);
    this.log.info({ count: targets.length }, 'remote disconnect');
  }

  // ---- shutdown ---------------------------------------------------------------------------

  /**
   * Tells every client to come back later and closes it with 1001, then waits (at most `deadlineMs`)
   * for calls still in flight to finish, so their Disconnect calls are queued before the flush.
   */
  async disconnectAll(deadlineMs: number): Promise<void> {
    this.liveness.stop();
    const frame = disconnectFrame('server_restart', true);
    for (const session of [...this.registry]) {
      // Connections still authenticating get no frame: they never had a welcome.
      if (session.state === 'open') session.closeWith(CLOSE_GOING_AWAY, frame);
      else session.close(CLOSE_GOING_AWAY);
    }
    if (this.unwinding.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.unwound.push(resolve)),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, deadlineMs); }),
    ]);
    clearTimeout(timer);
  }
}
