/**
 * What the node follows as a whole, from what each worker reports: a stream is followed (pub/sub
 * subscribed) while any worker has a subscriber; an identifier counts once (clients_uniq_num) while
 * any worker has a connection with it. A worker that dies takes its share with it.
 */
export class NodeTally {
  private readonly streams = new Map<string, number>();
  private readonly identifiers = new Map<string, number>();
  private readonly byWorker = new Map<number, { readonly streams: Set<string>; readonly identifiers: Set<string> }>();

  constructor(private readonly onStream: (stream: string, followed: boolean) => void) {}

  get streamCount(): number {
    return this.streams.size;
  }

  get identifierCount(): number {
    return this.identifiers.size;
  }

  /** A worker's report: its first subscriber of `stream` arrived (true) or its last left (false). */
  stream(worker: number, stream: string, followed: boolean): void {
    const own = this.of(worker).streams;
    if (followed === own.has(stream)) return;
    if (followed) own.add(stream);
    else own.delete(stream);
    if (count(this.streams, stream, followed ? 1 : -1)) this.onStream(stream, followed);
  }

  /** A worker's report: identifiers got their first connection there (true) or lost their last (false). */
  identifier(worker: number, identifiers: string, present: boolean): void {
    const own = this.of(worker).identifiers;
    if (present === own.has(identifiers)) return;
    if (present) own.add(identifiers);
    else own.delete(identifiers);
    count(this.identifiers, identifiers, present ? 1 : -1);
  }

  /** The worker is gone: everything it held is released. */
  forget(worker: number): void {
    const own = this.byWorker.get(worker);
    if (!own) return;
    this.byWorker.delete(worker);
    for (const stream of own.streams) if (count(this.streams, stream, -1)) this.onStream(stream, false);
    for (const identifiers of own.identifiers) count(this.identifiers, identifiers, -1);
  }

  private of(worker: number): { readonly streams: Set<string>; readonly identifiers: Set<string> } {
    let own = this.byWorker.get(worker);
    if (!own) {
      own = { streams: new Set(), identifiers: new Set() };
      this.byWorker.set(worker, own);
    }
    return own;
  }
}

/** Adds `change` to a key's count; true when the key just appeared (0 → 1) or just went (1 → 0). */
function count(counts: Map<string, number>, key: string, change: 1 | -1): boolean {
  const next = (counts.get(key) ?? 0) + change;
  if (next > 0) counts.set(key, next);
  else counts.delete(key);
  return change === 1 ? next === 1 : next === 0;
}
