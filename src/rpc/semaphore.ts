import { CancelledError } from '../node/controller.js';

export { CancelledError };

/** A caller waiting for a slot, linked in arrival order so both ends and removal are O(1). */
interface Waiter {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  readonly signal: AbortSignal;
  readonly onAbort: () => void;
  prev: Waiter | null;
  next: Waiter | null;
}

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
  private head: Waiter | null = null;
  private tail: Waiter | null = null;
  private waiting = 0;

  constructor(private readonly capacity: number) {}

  get pending(): number {
    return this.waiting;
  }

  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(new CancelledError());
    if (this.active < this.capacity) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve, reject, signal, prev: this.tail, next: null,
        onAbort: () => {
          this.unlink(waiter);
          reject(new CancelledError());
        },
      };
      if (this.tail) this.tail.next = waiter;
      else this.head = waiter;
      this.tail = waiter;
      this.waiting++;
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    });
  }

  release(): void {
    const next = this.head;
    if (next) {
      this.unlink(next);
      next.signal.removeEventListener('abort', next.onAbort);
      next.resolve(); // the slot passes straight to the waiter
    } else {
      this.active--;
    }
  }

  private unlink(waiter: Waiter): void {
    if (waiter.prev) waiter.prev.next = waiter.next;
    else if (this.head === waiter) this.head = waiter.next;
    else return; // already unlinked
    if (waiter.next) waiter.next.prev = waiter.prev;
    else this.tail = waiter.prev;
    waiter.prev = null;
    waiter.next = null;
    this.waiting--;
  }
}
