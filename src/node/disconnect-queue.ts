import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { errorMessage } from '../errors.js';
import type { Controller, DisconnectContext } from './controller.js';

const TICK_MS = 100;

/**
 * Disconnect calls at most `ratePerSecond`, so a mass disconnect does not flood the app.
 * Enqueue never blocks; on shutdown the rest is flushed as fast as RPC allows, within a deadline.
 */
export class DisconnectQueue {
  private readonly items: DisconnectContext[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly perTick: number;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly controller: Controller,
    ratePerSecond: number,
    metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.perTick = Math.max(1, Math.ceil((ratePerSecond * TICK_MS) / 1000));
    metrics.registerGauge('disconnect_queue_size', () => this.items.length);
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  enqueue(ctx: DisconnectContext): void {
    this.items.push(ctx);
  }

  private tick(): void {
    for (let i = 0; i < this.perTick && this.items.length > 0; i++) this.run(this.items.shift()!);
  }

  private run(ctx: DisconnectContext): Promise<void> {
    const call = this.controller
      .disconnect(ctx)
      .catch((err: unknown) => this.logger.warn({ sid: ctx.sid, err: errorMessage(err) }, 'disconnect call failed'))
      .finally(() => this.inFlight.delete(call));
    this.inFlight.add(call);
    return call;
  }

  /** Runs everything left, bounded by `deadlineMs`; returns how many calls were not made. */
  async flush(deadlineMs: number): Promise<number> {
    if (this.timer) clearInterval(this.timer);
    const all = this.items.splice(0).map((ctx) => this.run(ctx));
    const pending = [...this.inFlight, ...all];
    let timedOut = false;
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(pending),
      new Promise<void>((resolve) => { deadline = setTimeout(() => { timedOut = true; resolve(); }, deadlineMs); }),
    ]);
    if (deadline) clearTimeout(deadline);
    const lost = timedOut ? this.inFlight.size : 0;
    if (lost > 0) this.logger.warn({ lost }, 'shutdown timeout: disconnect calls not completed');
    return lost;
  }
}
