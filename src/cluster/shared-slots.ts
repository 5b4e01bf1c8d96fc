import { CancelledError, type CallSlots } from '../rpc/semaphore.js';
import { WaitQueue } from '../rpc/wait-queue.js';
import { heldSlotsCell, RPC_GENERATION, RPC_IN_USE } from './shared-cells.js';

/** Bounds a wait so a wake-up lost between threads costs at most this long. */
const MAX_WAIT_MS = 250;

/**
 * RPC slots shared by a node's worker threads (--rpc_concurrency is per node): a slot is taken with
 * a compare-and-swap on shared memory; a release bumps a generation and wakes threads waiting on it.
 * Within a thread, waiters are served in arrival order; across threads, whoever wakes first.
 */
export class SharedSlots implements CallSlots {
  private readonly cells: Int32Array;
  private readonly waiters = new WaitQueue();
  private watching = false;
  /** This worker's own count of held slots, so the primary can reclaim them if the worker dies. */
  private readonly heldCell: number;

  constructor(buffer: SharedArrayBuffer, private readonly capacity: number, index: number) {
    this.cells = new Int32Array(buffer);
    this.heldCell = heldSlotsCell(buffer, index);
  }

  get pending(): number {
    return this.waiters.size;
  }

  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(new CancelledError());
    if (this.waiters.size === 0 && this.take()) return Promise.resolve();
    const waiting = this.waiters.wait(signal);
    this.watch();
    return waiting;
  }

  release(): void {
    Atomics.sub(this.cells, this.heldCell, 1);
    Atomics.sub(this.cells, RPC_IN_USE, 1);
    Atomics.add(this.cells, RPC_GENERATION, 1);
    Atomics.notify(this.cells, RPC_GENERATION);
    this.serve();
  }

  private take(): boolean {
    for (;;) {
      const used = Atomics.load(this.cells, RPC_IN_USE);
      if (used >= this.capacity) return false;
      if (Atomics.compareExchange(this.cells, RPC_IN_USE, used, used + 1) === used) {
        Atomics.add(this.cells, this.heldCell, 1);
        return true;
      }
    }
  }

  /** Hands free slots to this thread's waiters, oldest first. */
  private serve(): void {
    while (this.waiters.size > 0 && this.take()) {
      // The queue is not empty, so the slot taken is handed over.
      this.waiters.wake();
    }
  }

  /** Waits (without blocking the thread) for a release anywhere in the node, while this thread has waiters. */
  private watch(): void {
    if (this.watching) return;
    // Read the generation before trying: a release after this read ends the wait at once.
    const generation = Atomics.load(this.cells, RPC_GENERATION);
    this.serve();
    if (this.waiters.size === 0) return;
    this.watching = true;
    const wait = Atomics.waitAsync(this.cells, RPC_GENERATION, generation, MAX_WAIT_MS);
    const again = (): void => {
      this.watching = false;
      this.watch();
    };
    if (wait.async) void wait.value.then(again);
    else queueMicrotask(again);
  }
}
