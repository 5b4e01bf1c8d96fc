import type { Logger } from '../logging/logger.js';
import { COUNTER_NAMES, GAUGE_NAMES, type MetricsReader } from './metrics.js';

/** `--metrics_log`: logs counter deltas and gauge values every interval. */
export class MetricsLogger {
  private last: Record<string, number> = {};
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly metrics: MetricsReader, private readonly logger: Logger, private readonly intervalMs: number) {}

  start(): void {
    this.snapshot();
    this.timer = setInterval(() => this.logger.info(this.snapshot(), 'metrics'), this.intervalMs);
    this.timer.unref();
  }

  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of COUNTER_NAMES) {
      const value = this.metrics.counters[name];
      out[name] = value - (this.last[name] ?? 0);
      this.last[name] = value;
    }
    for (const name of GAUGE_NAMES) out[name] = this.metrics.gauge(name);
    return out;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
