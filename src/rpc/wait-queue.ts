import { CancelledError } from '../node/controller.js';

/** A caller waiting for a slot, linked in arrival order so both ends and removal are O(1). */
interface Waiter {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  readonly signal: AbortSignal;
  readonly onAbort: () => void;
  prev: Waiter | null;
  next: Waiter | null;
}

/**
 * Callers waiting for a slot, first come first served; one whose connection closed (signal aborted)
 * leaves the queue and gets CancelledError instead of a slot.
 */
export class WaitQueue {
  private head: Waiter | null = null;
  private tail: Waiter | null = null;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Resolves when wake() hands this caller a slot. */
  wait(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(new CancelledError());
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
      this.count++;
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    });
  }

  /** Hands a slot to the oldest waiter; false when nobody waits. */
  wake(): boolean {
    const next = this.head;
    if (!next) return false;
    this.unlink(next);
    next.signal.removeEventListener('abort', next.onAbort);
    next.resolve();
    return true;
  }

  private unlink(waiter: Waiter): void {
    if (waiter.prev) waiter.prev.next = waiter.next;
    else if (this.head === waiter) this.head = waiter.next;
    else return; // already unlinked
    if (waiter.next) waiter.next.prev = waiter.prev;
    else this.tail = waiter.prev;
    waiter.prev = null;
    waiter.next = null;
    this.count--;
  }
}
