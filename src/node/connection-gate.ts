/**
 * Admission against --max_conn. Every admit() that says yes is paid back by exactly one release(),
 * when that connection's transport closes (or when the request is refused after all).
 */
export interface ConnectionGate {
  /** Takes a place for one connection; false when the node is full. */
  admit(): boolean;
  release(): void;
}

/** One thread's node: its own open sessions are the count (a WebSocket opens within its upgrade, so nothing is in between). */
export class LocalGate implements ConnectionGate {
  constructor(private readonly maxConn: number, private readonly open: () => number) {}

  admit(): boolean {
    return this.maxConn === 0 || this.open() < this.maxConn;
  }

  release(): void {}
}
