import type { ConnectionGate } from '../node/connection-gate.js';

/**
 * Counters the worker threads of a node share in memory, so per-node limits need no messages:
 * [0] RPC calls in flight, [1] RPC release generation (wakes waiters in other threads),
 * [2] connections admitted on the node, [3 + i] those of worker i, [3 + workers + i] RPC slots held by worker i.
 */
export const RPC_IN_USE = 0;
export const RPC_GENERATION = 1;
const NODE_CONNECTIONS = 2;
const PER_WORKER_BASE = 3;

export function createCells(workers: number): SharedArrayBuffer {
  return new SharedArrayBuffer((PER_WORKER_BASE + 2 * workers) * Int32Array.BYTES_PER_ELEMENT);
}

function workersOf(buffer: SharedArrayBuffer): number {
  return (buffer.byteLength / Int32Array.BYTES_PER_ELEMENT - PER_WORKER_BASE) / 2;
}

function connectionsCell(index: number): number {
  return PER_WORKER_BASE + index;
}

/** Index of the cell counting the RPC slots worker `index` holds. */
export function heldSlotsCell(buffer: SharedArrayBuffer, index: number): number {
  return PER_WORKER_BASE + workersOf(buffer) + index;
}

/** A dead worker holds nothing: its connections and RPC slots go back to the node. */
export function releaseWorker(buffer: SharedArrayBuffer, index: number): void {
  const cells = new Int32Array(buffer);
  Atomics.sub(cells, NODE_CONNECTIONS, Atomics.exchange(cells, connectionsCell(index), 0));
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

/**
 * --max_conn for the whole node: a place is taken with a compare-and-swap on the node's count, so two
 * workers admitting at the same moment cannot both take the last one. Each worker also counts its own,
 * so the primary can give back a dead worker's places.
 */
export class SharedGate implements ConnectionGate {
  private readonly cells: Int32Array;

  constructor(buffer: SharedArrayBuffer, private readonly index: number, private readonly maxConn: number) {
    this.cells = new Int32Array(buffer);
  }

  admit(): boolean {
    for (;;) {
      const admitted = Atomics.load(this.cells, NODE_CONNECTIONS);
      if (this.maxConn > 0 && admitted >= this.maxConn) return false;
      if (Atomics.compareExchange(this.cells, NODE_CONNECTIONS, admitted, admitted + 1) === admitted) {
        Atomics.add(this.cells, connectionsCell(this.index), 1);
        return true;
      }
    }
  }

  release(): void {
    Atomics.sub(this.cells, connectionsCell(this.index), 1);
    Atomics.sub(this.cells, NODE_CONNECTIONS, 1);
  }
}
