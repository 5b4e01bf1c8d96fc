import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { CLOSE_NORMAL, PROTOCOL_EXT_JSON, disconnectFrame } from '../protocol/messages.js';
import { pingTimestamp, type PingPrecision } from '../protocol/ext-frames.js';
import type { Session } from './session.js';

const PRECISIONS: readonly PingPrecision[] = ['s', 'ms', 'ns'];

function pingFrameAt(nowMs: number, precision: PingPrecision): string {
  return `{"type":"ping","message":${pingTimestamp(nowMs, precision)}}`;
}
/** Granularity of pings and of the slow-consumer sweep. */
const TICK_MS = 250;
/**
 * Deliveries also trigger the sweep, at most this often: buffers grow only through deliveries, so a
 * timer delayed by a busy machine can no longer let one grow through uWS's limit, where the too_slow
 * frame and the close frame would be dropped (the client would see 1006).
 */
const DELIVERY_SWEEP_MS = 100;

export interface LivenessOptions {
  readonly pingIntervalS: number;
  /** Send buffer above which a client is too slow, bytes. */
  readonly maxPendingBytes: number;
  /** Seconds without any frame from an ext-json client before a no_pong disconnect (0 = off). */
  readonly pongTimeoutS?: number;
}

/**
 * Keeps connections honest with one timer for all of them: the shared ping, per-connection ?pi= pings,
 * and the slow-consumer sweep.
 *
 * The shared ping goes out as one frame per timestamp precision, written to each open session in a loop
 * over the sessions (as the sweep already loops over them every tick), not through a uWS topic: joining a
 * topic costs every connect a native subscribe and every close an unsubscribe (~2–4 µs of a ~65 µs
 * connect, bench/README.md), while the loop costs a fraction of a microsecond per session per ping interval
 * next to the write itself, which a topic publish makes too.
 */
export class Liveness {
  private readonly customPing = new Set<Session>();
  private readonly pingSubscribers: Record<PingPrecision, number> = { s: 0, ms: 0, ns: 0 };
  /** ext-json sessions under --pong_timeout → when we last heard from them. */
  private readonly lastHeard = new Map<Session, number>();
  private readonly pongTimeoutMs: number;
  private ticker: NodeJS.Timeout | undefined;
  private nextSharedPingAt = 0;
  private lastSweepAt = 0;
  private readonly log: Logger;

  constructor(
    private readonly opts: LivenessOptions,
    private readonly sessions: Iterable<Session>,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'node' });
    this.pongTimeoutMs = (opts.pongTimeoutS ?? 0) * 1000;
  }

  start(): void {
    this.nextSharedPingAt = Date.now() + this.opts.pingIntervalS * 1000;
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
  }

  stop(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
  }

  /** An authenticated session starts receiving pings. */
  track(session: Session): void {
    if (session.liveSocket === null) return;
    // As anycable-go: only the extended protocol promises pongs (any frame counts).
    if (this.pongTimeoutMs > 0 && session.request.protocol === PROTOCOL_EXT_JSON) this.lastHeard.set(session, Date.now());
    if (session.customPingS === null) {
      session.onSharedPing = true;
      this.pingSubscribers[session.request.pingPrecision]++;
    } else if (session.customPingS > 0) {
      session.nextPingAt = Date.now() + session.customPingS * 1000;
      this.customPing.add(session);
    }
  }

  /** The transport is gone. */
  untrack(session: Session): void {
    this.customPing.delete(session);
    this.lastHeard.delete(session);
    if (session.onSharedPing) {
      session.onSharedPing = false;
      this.pingSubscribers[session.request.pingPrecision]--;
    }
  }

  /** Any frame from the client counts as its pong. */
  heard(session: Session): void {
    if (this.pongTimeoutMs > 0 && this.lastHeard.has(session)) this.lastHeard.set(session, Date.now());
  }

  private tick(): void {
    const now = Date.now();
    if (now >= this.nextSharedPingAt) {
      this.nextSharedPingAt = now + this.opts.pingIntervalS * 1000;
      this.sharedPing(now);
    }
    for (const session of this.customPing) {
      if (now < session.nextPingAt || session.customPingS === null) continue;
      session.nextPingAt = now + session.customPingS * 1000;
      session.send(pingFrameAt(now, session.request.pingPrecision));
    }
    this.expireSilent(now);
    this.evictSlowConsumers();
  }

  /** One frame per precision in use, written to every session on the shared ping (counted by `send`). */
  private sharedPing(now: number): void {
    const subscribers = this.pingSubscribers;
    if (subscribers.s + subscribers.ms + subscribers.ns === 0) return;
    const frames: Record<PingPrecision, string> = { s: '', ms: '', ns: '' };
    for (const precision of PRECISIONS) if (subscribers[precision] > 0) frames[precision] = pingFrameAt(now, precision);
    for (const session of this.sessions) {
      if (session.onSharedPing) session.send(frames[session.request.pingPrecision]);
    }
  }

  /** ext-json clients silent for --pong_timeout: disconnect no_pong (reconnect true), close 1000 "No Pong". */
  private expireSilent(now: number): void {
    if (this.lastHeard.size === 0) return;
    for (const [session, at] of this.lastHeard) {
      if (now - at <= this.pongTimeoutMs) continue;
      this.lastHeard.delete(session);
      this.log.info({ sid: session.sid }, 'no pong, disconnecting');
      session.closeWith(CLOSE_NORMAL, disconnectFrame('no_pong', true), 'No Pong');
    }
  }

  /** Called after each delivery: sweeps when the last sweep is older than DELIVERY_SWEEP_MS. */
  afterDelivery(): void {
    if (Date.now() - this.lastSweepAt >= DELIVERY_SWEEP_MS) this.evictSlowConsumers();
  }

  /** uWS skips sockets over maxBackpressure silently; we tell them and close them. */
  private evictSlowConsumers(): void {
    this.lastSweepAt = Date.now();
    const limit = this.opts.maxPendingBytes;
    for (const session of this.sessions) {
      const socket = session.liveSocket;
      if (socket === null || socket.getBufferedAmount() <= limit) continue;
      this.metrics.counters.disconnected_slow_clients_total++;
      this.log.info({ sid: session.sid, buffered: socket.getBufferedAmount() }, 'slow client disconnected');
      session.closeWith(CLOSE_NORMAL, disconnectFrame('too_slow', true));
    }
  }
}
