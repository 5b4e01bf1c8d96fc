/**
 * What stands between POST /auth/token's password path and scrypt (16 MiB and ~50 ms of a libuv thread
 * per check): a per-address throttle that counts attempts as they arrive, and a global cap on checks in flight.
 */

export interface ThrottleOptions {
  /** Attempts an address may make at once. */
  readonly burst: number;
  /** One more attempt is allowed per this many ms. */
  readonly refillMs: number;
  /** Addresses remembered; past it the least recently seen is forgotten first. */
  readonly maxAddresses: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = { burst: 5, refillMs: 2000, maxAddresses: 10_000 };

/**
 * A token bucket per address. An attempt takes a token when it arrives, before any work, so a parallel
 * burst is counted in full (a failure counter read before the failures were recorded let bursts through).
 */
export class AttemptThrottle {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly opts: ThrottleOptions = DEFAULT_THROTTLE, private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.buckets.size;
  }

  /** Records an attempt: 0 when it may go ahead, else the whole seconds to wait (for Retry-After). */
  take(address: string): number {
    const now = this.now();
    const known = this.buckets.get(address);
    const bucket = known
      ? { tokens: Math.min(this.opts.burst, known.tokens + (now - known.at) / this.opts.refillMs), at: now }
      : { tokens: this.opts.burst, at: now };
    // Re-inserting keeps the map ordered by last attempt: the first entry is the one to forget.
    this.buckets.delete(address);
    this.buckets.set(address, bucket);
    while (this.buckets.size > this.opts.maxAddresses) {
      const oldest = this.buckets.keys().next().value;
      if (oldest === undefined) break;
      this.buckets.delete(oldest);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - bucket.tokens) * this.opts.refillMs) / 1000));
  }
}

export const BUSY = Symbol('busy');

/** Caps expensive work in flight; a bounded number wait, the rest are told at once that we are busy. */
export class WorkGate {
  private active = 0;
  private peak = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly capacity: number, private readonly maxWaiting: number) {}

  /** The most ever in flight at once (tests read it). */
  get peakInFlight(): number {
    return this.peak;
  }

  async run<T>(work: () => Promise<T>): Promise<T | typeof BUSY> {
    if (this.active >= this.capacity) {
      if (this.waiting.length >= this.maxWaiting) return BUSY;
      // The slot is handed over by release(): `active` already counts us.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active++;
    }
    this.peak = Math.max(this.peak, this.active);
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
