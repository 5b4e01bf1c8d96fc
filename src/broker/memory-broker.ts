import type { Broker, BrokerOptions, HistoryEntry, HistoryRead, HistoryStore, SessionStore, StreamPosition } from './broker.js';
import { STREAM_META_TTL_FACTOR } from './broker.js';
import { newEpoch } from './epoch.js';
import { MemoryPresence } from '../presence/memory-presence.js';
import { DEFAULT_PRESENCE_TTL_S } from '../presence/presence-store.js';

/** How often expired messages, streams and sessions are dropped. */
const SWEEP_INTERVAL_MS = 1000;

interface StoredEntry extends HistoryEntry {
  readonly atMs: number;
}

/** One stream's store: an epoch, the last offset given, and the newest `limit` messages. */
interface MemoryStream {
  readonly epoch: string;
  offset: number;
  entries: StoredEntry[];
  lastAppendMs: number;
}

/**
 * History for one node: a ring of the newest messages per stream. Each stream store gets its own
 * epoch when created; it is forgotten (and a later message starts a new epoch) once it has been
 * quiet for 10× the history TTL.
 */
export class MemoryHistory implements HistoryStore {
  private readonly streams = new Map<string, MemoryStream>();

  constructor(private readonly opts: BrokerOptions, private readonly now: () => number = Date.now) {}

  append(stream: string, data: string): StreamPosition {
    const at = this.now();
    let store = this.streams.get(stream);
    if (!store) {
      store = { epoch: newEpoch(), offset: 0, entries: [], lastAppendMs: at };
      this.streams.set(stream, store);
    }
    const entry: StoredEntry = { epoch: store.epoch, offset: ++store.offset, data, atMs: at };
    store.lastAppendMs = at;
    store.entries.push(entry);
    // Limits are small (100 by default): shifting the array is cheaper than ring bookkeeping.
    if (store.entries.length > this.opts.historyLimit) store.entries.shift();
    return entry;
  }

  async readFrom(stream: string, position: StreamPosition): Promise<HistoryRead> {
    return this.readFromNow(stream, position);
  }

  /** Synchronous read, for callers that want no gap between reading and going live. */
  readFromNow(stream: string, position: StreamPosition): HistoryRead {
    const store = this.streams.get(stream);
    if (!store || store.epoch !== position.epoch) return { ok: false, miss: 'unknown_epoch' };
    if (position.offset > store.offset) return { ok: false, miss: 'offset_ahead' };
    if (position.offset === store.offset) return { ok: true, entries: [] };
    const fresh = this.freshEntries(store);
    const first = fresh[0];
    if (!first || first.offset > position.offset + 1) return { ok: false, miss: 'evicted' };
    return { ok: true, entries: fresh.filter((e) => e.offset > position.offset).map(publicEntry) };
  }

  async readSince(stream: string, sinceS: number): Promise<HistoryRead> {
    const store = this.streams.get(stream);
    if (!store) return { ok: true, entries: [] };
    const fromMs = sinceS * 1000;
    return { ok: true, entries: this.freshEntries(store).filter((e) => e.atMs >= fromMs).map(publicEntry) };
  }

  private freshEntries(store: MemoryStream): readonly StoredEntry[] {
    const oldest = this.now() - this.opts.historyTtlS * 1000;
    const firstFresh = store.entries.findIndex((e) => e.atMs >= oldest);
    return firstFresh === -1 ? [] : firstFresh === 0 ? store.entries : store.entries.slice(firstFresh);
  }

  /** Drops expired messages, and stream stores quiet for 10× the TTL. */
  sweep(): void {
    const now = this.now();
    const oldest = now - this.opts.historyTtlS * 1000;
    const forgetBefore = now - this.opts.historyTtlS * 1000 * STREAM_META_TTL_FACTOR;
    for (const [name, store] of this.streams) {
      if (store.lastAppendMs < forgetBefore) {
        this.streams.delete(name);
        continue;
      }
      const firstFresh = store.entries.findIndex((e) => e.atMs >= oldest);
      if (firstFresh === -1) store.entries = [];
      else if (firstFresh > 0) store.entries = store.entries.slice(firstFresh);
    }
  }

  get streamCount(): number {
    return this.streams.size;
  }
}

function publicEntry(e: StoredEntry): HistoryEntry {
  return { epoch: e.epoch, offset: e.offset, data: e.data };
}

/** Session snapshots in a map; each lives sessions_ttl after its last commit. */
export class MemorySessions implements SessionStore {
  private readonly entries = new Map<string, { snapshot: string; expiresAtMs: number }>();

  constructor(private readonly ttlS: number, private readonly now: () => number = Date.now) {}

  async commit(sid: string, snapshot: string): Promise<void> {
    if (this.ttlS <= 0) return;
    // Re-inserting keeps the map in expiry order, so the sweep can stop at the first live entry.
    this.entries.delete(sid);
    this.entries.set(sid, { snapshot, expiresAtMs: this.now() + this.ttlS * 1000 });
  }

  async fetch(sid: string): Promise<string | null> {
    const entry = this.entries.get(sid);
    if (!entry || entry.expiresAtMs <= this.now()) return null;
    return entry.snapshot;
  }

  sweep(): void {
    const now = this.now();
    for (const [sid, entry] of this.entries) {
      if (entry.expiresAtMs > now) break;
      this.entries.delete(sid);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The single-node broker: history and sessions in this process. */
export class MemoryBroker implements Broker {
  readonly kind = 'memory';
  readonly history: MemoryHistory;
  readonly sessions: MemorySessions;
  readonly presence: MemoryPresence;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: BrokerOptions, now: () => number = Date.now) {
    this.history = new MemoryHistory(opts, now);
    this.sessions = new MemorySessions(opts.sessionsTtlS, now);
    this.presence = new MemoryPresence(opts.presenceTtlS ?? DEFAULT_PRESENCE_TTL_S, now);
  }

  async start(): Promise<void> {
    this.timer = setInterval(() => {
      this.history.sweep();
      this.sessions.sweep();
    }, SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
  }

  isReady(): boolean {
    return true;
  }
}
