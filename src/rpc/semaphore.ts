import { CablecatError } from '../errors.js';

export class CancelledError extends CablecatError {
  constructor() {
    super('CABLECAT_ERR_CANCELLED', 'connection closed while the call was waiting');
  }
}

/** Caps calls in flight; waiters whose connection closed are dropped instead of run. */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<{ resolve: () => void; reject: (e: Error) => void; signal: AbortSignal; onAbort: () => void }> = [];

  constructor(private readonly capacity: number) {}

  get pending(): number {
    return this.waiters.length;
  }

  async acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new CancelledError();
    if (this.active < this.capacity) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve, reject, signal,
        onAbort: () => {
          const idx = this.waiters.indexOf(waiter);
          if (idx !== -1) this.waiters.splice(idx, 1);
          reject(new CancelledError());
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) {
      next.signal.removeEventListener('abort', next.onAbort);
      next.resolve(); // the slot passes straight to the waiter
    } else {
      this.active--;
    }
  }
}
