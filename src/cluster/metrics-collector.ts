import type { MetricsSnapshot } from './messages.js';

/** How long a scrape waits for a worker's numbers. */
const COLLECT_TIMEOUT_MS = 1_000;

interface Collect {
  readonly snapshots: Map<number, MetricsSnapshot>;
  readonly waiting: Set<number>;
  readonly done: () => void;
}

/**
 * Asks every live worker for its metrics and gathers the answers (at most COLLECT_TIMEOUT_MS). A worker
 * that dies meanwhile is left out of the answer: its numbers so far are kept by ClusterMetrics.retire.
 */
export class MetricsCollector {
  private readonly pending = new Map<number, Collect>();
  private nextId = 1;

  constructor(private readonly ask: (worker: number, id: number) => void) {}

  collect(workers: readonly number[]): Promise<ReadonlyMap<number, MetricsSnapshot>> {
    const snapshots = new Map<number, MetricsSnapshot>();
    if (workers.length === 0) return Promise.resolve(snapshots);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(snapshots);
      };
      const timer = setTimeout(done, COLLECT_TIMEOUT_MS);
      this.pending.set(id, { snapshots, waiting: new Set(workers), done });
      for (const worker of workers) this.ask(worker, id);
    });
  }

  /** A worker's answer to request `id`. */
  answered(worker: number, id: number, snapshot: MetricsSnapshot): void {
    const collect = this.pending.get(id);
    if (!collect?.waiting.delete(worker)) return;
    collect.snapshots.set(worker, snapshot);
    if (collect.waiting.size === 0) collect.done();
  }

  /** The worker died: drop what it already answered (its counters must not come back as a live worker's) and stop waiting for it. */
  workerGone(worker: number): void {
    for (const collect of this.pending.values()) {
      collect.snapshots.delete(worker);
      if (collect.waiting.delete(worker) && collect.waiting.size === 0) collect.done();
    }
  }
}
