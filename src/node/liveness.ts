import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { TopicPublisher } from '../hub/hub.js';
import { CLOSE_NORMAL, disconnectFrame, pingFrame } from '../protocol/messages.js';
import type { Session } from './session.js';

export const PING_TOPIC = '$ping';
/** Granularity of pings and of the slow-consumer sweep. */
const TICK_MS = 250;

export interface LivenessOptions {
  readonly pingIntervalS: number;
  /** Send buffer above which a client is too slow, bytes. */
  readonly maxPendingBytes: number;
}

/**
 * Keeps connections honest with one timer for all of them: the shared ping (one uWS publish to a
 * topic every open session joins), per-connection ?pi= pings, and the slow-consumer sweep.
 */
export class Liveness {
  private readonly customPing = new Set<Session>();
  private pingSubscribers = 0;
  private ticker: NodeJS.Timeout | undefined;
  private nextSharedPingAt = 0;
  private readonly log: Logger;

  constructor(
    private readonly opts: LivenessOptions,
    private readonly sessions: Iterable<Session>,
    private readonly publisher: TopicPublisher,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'node' });
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
    const socket = session.liveSocket;
    if (socket === null) return;
    if (session.customPingS === null) {
      socket.subscribe(PING_TOPIC);
      session.onSharedPing = true;
      this.pingSubscribers++;
    } else if (session.customPingS > 0) {
      session.nextPingAt = Date.now() + session.customPingS * 1000;
      this.customPing.add(session);
    }
  }

  /** The transport is gone (uWS dropped its topics itself). */
  untrack(session: Session): void {
    this.customPing.delete(session);
    if (session.onSharedPing) {
      session.onSharedPing = false;
      this.pingSubscribers--;
    }
  }

  private tick(): void {
    const now = Date.now();
    if (now >= this.nextSharedPingAt) {
      this.nextSharedPingAt = now + this.opts.pingIntervalS * 1000;
      const frame = pingFrame(Math.floor(now / 1000));
      this.publisher.publish(PING_TOPIC, frame);
      this.metrics.counters.server_msg_total += this.pingSubscribers;
      this.metrics.counters.data_sent_total += this.pingSubscribers * frame.length;
    }
    for (const session of this.customPing) {
      if (now < session.nextPingAt || session.customPingS === null) continue;
      session.nextPingAt = now + session.customPingS * 1000;
      session.send(pingFrame(Math.floor(now / 1000)));
    }
    this.evictSlowConsumers();
  }

  /** uWS skips sockets over maxBackpressure silently; we tell them and close them. */
  private evictSlowConsumers(): void {
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
