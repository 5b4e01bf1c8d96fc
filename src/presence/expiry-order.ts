import { pairKey } from './presence-store.js';

/** One session's presence on one stream, as the node holding the session keeps it. */
export interface SessionPresence {
  readonly stream: string;
  readonly sid: string;
  readonly pid: string;
  expiresAtMs: number;
}

/**
 * Session presences in a map ordered by expiry: every join/touch re-inserts at the end with now + TTL
 * (the TTL is the same for all), so a sweep stops at the first live entry instead of scanning everything.
 */
export class ExpiryOrder {
  private readonly entries = new Map<string, SessionPresence>();

  get(stream: string, sid: string): SessionPresence | undefined {
    return this.entries.get(pairKey(stream, sid));
  }

  /** Puts the presence last (its expiry is the latest), replacing any earlier one of the pair. */
  set(entry: SessionPresence): void {
    const key = pairKey(entry.stream, entry.sid);
    this.entries.delete(key);
    this.entries.set(key, entry);
  }

  /** Removes and returns the pair's presence. */
  take(stream: string, sid: string): SessionPresence | undefined {
    const key = pairKey(stream, sid);
    const entry = this.entries.get(key);
    if (entry) this.entries.delete(key);
    return entry;
  }

  /** Moves the pair's presence last with a new expiry; undefined when there is none. */
  touch(stream: string, sid: string, expiresAtMs: number): SessionPresence | undefined {
    const key = pairKey(stream, sid);
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    entry.expiresAtMs = expiresAtMs;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  /** Removes and returns every presence expired at `now`, oldest first. */
  takeExpired(now: number): SessionPresence[] {
    const due: SessionPresence[] = [];
    for (const [key, entry] of this.entries) {
      if (entry.expiresAtMs > now) break;
      this.entries.delete(key);
      due.push(entry);
    }
    return due;
  }

  get size(): number {
    return this.entries.size;
  }
}
