import { CancelledError } from '../node/controller.js';
import { WaitQueue } from './wait-queue.js';

export { CancelledError };

/** Slots for calls in flight: this thread's semaphore, or one shared by a node's worker threads. */
export interface CallSlots {
  /** Callers waiting here for a free slot. */
  readonly pending: number;
  acquire(signal: AbortSignal): Promise<void>;
  release(): void;
}

/** Caps calls in flight; waiters whose connection closed are dropped instead of run. */
export class Semaphore implements CallSlots {
  private active = 0;
  private readonly waiters = new WaitQueue();

  constructor(private readonly capacity: number) {}

  get pending(): number {
    return this.waiters.size;
  }

  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(new CancelledError());
    if (this.active < this.capacity) {
      this.active++;
      return Promise.resolve();
    }
    return this.waiters.wait(signal);
  }

  release(): void {
    // The slot passes straight to the oldest waiter, if any.
    if (!this.waiters.wake()) this.active--;
  }
}
