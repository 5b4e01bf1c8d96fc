/**
 * Counters the worker threads of a node share in memory, so per-node limits need no messages:
 * [0] RPC calls in flight, [1] RPC release generation (wakes waiters in other threads),
 * [2 + i] open connections of worker i, [2 + workers + i] RPC slots held by worker i.
 */
export const RPC_IN_USE = 0;
export const RPC_GENERATION = 1;
const CONNECTIONS_BASE = 2;

export function createCells(workers: number): SharedArrayBuffer {
  return new SharedArrayBuffer((CONNECTIONS_BASE + 2 * workers) * Int32Array.BYTES_PER_ELEMENT);
}

/** Index of the cell counting the RPC slots worker `index` holds. */
export function heldSlotsCell(buffer: SharedArrayBuffer, index: number): number {
  const workers = (buffer.byteLength / Int32Array.BYTES_PER_ELEMENT - CONNECTIONS_BASE) / 2;
  return CONNECTIONS_BASE + workers + index;
}

/** A dead worker holds nothing: its connections and RPC slots go back to the node. */
export function releaseWorker(buffer: SharedArrayBuffer, index: number): void {
  ConnectionCells.clear(buffer, index);
  reclaimSlots(buffer, index);
}

/** A dead worker's RPC slots go back to the node (its calls will never release them) and waiters wake. */
export function reclaimSlots(buffer: SharedArrayBuffer, index: number): void {
  const cells = new Int32Array(buffer);
  const held = Atomics.exchange(cells, heldSlotsCell(buffer, index), 0);
  if (held === 0) return;
  Atomics.sub(cells, RPC_IN_USE, held);
  Atomics.add(cells, RPC_GENERATION, 1);
  Atomics.notify(cells, RPC_GENERATION);
}

/** Connections of the whole node: each worker writes its own count, anyone sums them. */
export class ConnectionCells {
  private readonly cells: Int32Array;

  constructor(buffer: SharedArrayBuffer, private readonly index: number) {
    this.cells = new Int32Array(buffer);
  }

  /** This worker's count, written on every open and close. */
  record(own: number): void {
    Atomics.store(this.cells, CONNECTIONS_BASE + this.index, own);
  }

  total(): number {
    const workers = (this.cells.length - CONNECTIONS_BASE) / 2;
    let sum = 0;
    for (let i = 0; i < workers; i++) sum += Atomics.load(this.cells, CONNECTIONS_BASE + i);
    return sum;
  }

  /** A worker that died holds no connections. */
  static clear(buffer: SharedArrayBuffer, index: number): void {
    Atomics.store(new Int32Array(buffer), CONNECTIONS_BASE + index, 0);
  }
}
