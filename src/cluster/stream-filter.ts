/**
 * Which streams a worker follows, readable by the primary without a message: a counting filter in
 * shared memory, one counter per bucket of stream names. The worker counts a stream up before its
 * first subscriber's confirmation leaves, so a broadcast the primary accepts after that always finds
 * it; a bucket shared by another stream only costs a delivery the worker ignores.
 */
const BUCKETS = 1 << 16;

export function createStreamFilterBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(BUCKETS * Int32Array.BYTES_PER_ELEMENT);
}

/** FNV-1a over the UTF-16 code units: computed once per broadcast, whatever the number of workers. */
export function streamBucket(stream: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < stream.length; i++) {
    hash ^= stream.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) & (BUCKETS - 1);
}

export class StreamFilter {
  private readonly counts: Int32Array;

  constructor(buffer: SharedArrayBuffer) {
    this.counts = new Int32Array(buffer);
  }

  /** The worker's first subscriber of `stream` arrived. */
  add(stream: string): void {
    Atomics.add(this.counts, streamBucket(stream), 1);
  }

  /** Its last subscriber left. */
  remove(stream: string): void {
    Atomics.sub(this.counts, streamBucket(stream), 1);
  }

  /** False only when the worker follows no stream of this bucket. */
  mayFollow(bucket: number): boolean {
    return Atomics.load(this.counts, bucket) > 0;
  }
}
