import type { HistoryStore, StreamPosition } from '../broker/broker.js';
import type { Publication, StreamBroadcast } from '../broadcast/message.js';
import type { Logger } from '../logging/logger.js';
import { RateLimitedLog } from '../logging/rate-limited.js';
import type { Metrics } from '../metrics/metrics.js';

/** Broadcasts waiting for the broker (e.g. while Redis is down); past this they are refused and counted. */
const MAX_WAITING = 10_000;

/**
 * Gives each broadcast its stream position before it fans out, and lets them out in the order they
 * came in even when the store answers asynchronously (Redis, NATS). The in-memory store answers at
 * once, so with nothing waiting a broadcast goes straight through without a promise.
 * A broadcast the store fails to take still goes out, without a position: live clients get it,
 * history lacks it.
 */
export class BroadcastSequencer {
  private tail: Promise<void> | null = null;
  private waiting = 0;
  private readonly quiet: RateLimitedLog;

  constructor(
    private readonly history: HistoryStore,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.quiet = new RateLimitedLog(logger.child({ component: 'broker' }));
  }

  /**
   * `emit` gets the publication (a broadcast with its position) after every one accepted before it.
   * Remote commands are not stored but keep their place: a disconnect never overtakes a broadcast.
   * False only when `emit` ran at once and returned false (a refusal seen later is not reported).
   */
  accept(pub: Publication, emit: (pub: Publication) => unknown): boolean {
    // Not stored (commands, whispers) or already stored (from another node): only the order matters.
    if (pub.kind !== 'broadcast' || pub.transient || pub.position) {
      if (this.tail === null) return emit(pub) !== false;
      this.after(Promise.resolve(null), pub, emit);
      return true;
    }
    let stored: StreamPosition | Promise<StreamPosition>;
    try {
      stored = this.history.append(pub.stream, pub.data);
    } catch (err) {
      stored = Promise.reject(err);
    }
    if (!(stored instanceof Promise) && this.tail === null) return emit({ ...pub, position: stored }) !== false;
    this.after(Promise.resolve(stored), pub, emit);
    return true;
  }

  /** Emits `pub` once everything before it was emitted and its own position is known. */
  private after(stored: Promise<StreamPosition | null>, pub: Publication, emit: (pub: Publication) => unknown): void {
    if (this.waiting >= MAX_WAITING) {
      this.metrics.counters.failed_broadcast_msg_total++;
      this.quiet.warn('overflow', { waiting: this.waiting }, 'broadcast refused: too many waiting for the broker');
      return;
    }
    // Handled below in order; this only keeps an early rejection from being reported as unhandled.
    stored.catch(() => undefined);
    this.waiting++;
    const previous = this.tail ?? Promise.resolve();
    const next: Promise<void> = previous
      .then(() => stored)
      .then(
        (position) => { emit(position && pub.kind === 'broadcast' ? { ...pub, position } : pub); },
        (err: unknown) => {
          this.quiet.warn('append', { err: String(err) }, 'broker could not store a broadcast; delivered without a position');
          emit(pub);
        },
      )
      .finally(() => {
        this.waiting--;
        if (this.tail === next) this.tail = null;
      });
    this.tail = next;
  }

  /** Resolves once every accepted broadcast was emitted (for shutdown). */
  async drain(): Promise<void> {
    while (this.tail !== null) await this.tail;
  }
}
