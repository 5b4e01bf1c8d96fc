/**
 * Admission against --max_conn. Every admit() that says yes is paid back by exactly one release(),
 * when that connection's transport closes (or when the request is refused after all).
 */
export interface ConnectionGate {
  /** Takes a place for one connection; false when the node is full. */
  admit(): boolean;
  release(): void;
}

/**
 * One thread's node: the places it gave out are the count, so a request admitted but not yet open
 * (an SSE POST whose body is still coming) holds its place too.
 */
export class LocalGate implements ConnectionGate {
  private admitted = 0;

  constructor(private readonly maxConn: number) {}

  admit(): boolean {
    if (this.maxConn > 0 && this.admitted >= this.maxConn) return false;
    this.admitted++;
    return true;
  }

  release(): void {
    this.admitted--;
  }
}
