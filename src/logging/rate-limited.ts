import type { Logger } from './logger.js';

/** Logs a repeated failure at most once per window, with how many were suppressed (no log storms). */
export class RateLimitedLog {
  private readonly lastAt = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();

  constructor(private readonly logger: Logger, private readonly windowMs = 5000) {}

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const last = this.lastAt.get(key) ?? 0;
    if (now - last < this.windowMs) {
      this.suppressed.set(key, (this.suppressed.get(key) ?? 0) + 1);
      return;
    }
    const skipped = this.suppressed.get(key) ?? 0;
    this.lastAt.set(key, now);
    this.suppressed.set(key, 0);
    this.logger.warn(skipped > 0 ? { ...fields, suppressed: skipped } : fields, msg);
  }
}
