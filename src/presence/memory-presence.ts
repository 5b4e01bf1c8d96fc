import type { ExpiredLeave, JoinOutcome, PresenceKey, PresenceSnapshot, PresenceStore } from './presence-store.js';

interface Member {
  info: string;
  readonly sids: Set<string>;
}

interface SessionPresence {
  readonly stream: string;
  readonly sid: string;
  readonly pid: string;
  expiresAtMs: number;
}

/** Map key of a (stream, sid) pair; JSON keeps any stream name unambiguous. */
function pairKey(stream: string, sid: string): string {
  return JSON.stringify([stream, sid]);
}

/**
 * Presence for one node. Members keep join order (the info reply lists them so). Session presences
 * sit in a map ordered by expiry: every join/touch re-inserts at the end with now + TTL (the TTL is
 * the same for all), so a sweep stops at the first live entry instead of scanning everything.
 */
export class MemoryPresence implements PresenceStore {
  private readonly streams = new Map<string, Map<string, Member>>();
  private readonly sessions = new Map<string, SessionPresence>();

  constructor(private readonly ttlS: number, private readonly now: () => number = Date.now) {}

  async join(stream: string, sid: string, pid: string, info: string): Promise<JoinOutcome> {
    return this.joinNow(stream, sid, pid, info);
  }

  joinNow(stream: string, sid: string, pid: string, info: string): JoinOutcome {
    const key = pairKey(stream, sid);
    const existing = this.sessions.get(key);
    if (existing && existing.pid !== pid) return { ok: false, error: 'id_mismatch' };
    this.sessions.delete(key);
    this.sessions.set(key, { stream, sid, pid, expiresAtMs: this.now() + this.ttlS * 1000 });
    let members = this.streams.get(stream);
    if (!members) {
      members = new Map();
      this.streams.set(stream, members);
    }
    const member = members.get(pid);
    if (member) {
      member.info = info;
      member.sids.add(sid);
      return { ok: true, joined: false };
    }
    members.set(pid, { info, sids: new Set([sid]) });
    return { ok: true, joined: true };
  }

  async leave(stream: string, sid: string): Promise<string | null> {
    const key = pairKey(stream, sid);
    const entry = this.sessions.get(key);
    if (!entry) return null;
    this.sessions.delete(key);
    return this.removeSession(entry) ? entry.pid : null;
  }

  /** True when it was the pid's last session on the stream. */
  private removeSession(entry: SessionPresence): boolean {
    const members = this.streams.get(entry.stream);
    const member = members?.get(entry.pid);
    if (!members || !member) return false;
    member.sids.delete(entry.sid);
    if (member.sids.size > 0) return false;
    members.delete(entry.pid);
    if (members.size === 0) this.streams.delete(entry.stream);
    return true;
  }

  async info(stream: string): Promise<PresenceSnapshot> {
    const members = this.streams.get(stream);
    if (!members) return { total: 0, records: [] };
    const records = [];
    for (const [id, member] of members) records.push({ id, info: member.info });
    return { total: records.length, records };
  }

  async touch(keys: readonly PresenceKey[]): Promise<void> {
    const expiresAtMs = this.now() + this.ttlS * 1000;
    for (const { stream, sid } of keys) {
      const key = pairKey(stream, sid);
      const entry = this.sessions.get(key);
      if (!entry) continue;
      entry.expiresAtMs = expiresAtMs;
      this.sessions.delete(key);
      this.sessions.set(key, entry);
    }
  }

  async expire(): Promise<readonly ExpiredLeave[]> {
    return this.expireNow();
  }

  expireNow(): ExpiredLeave[] {
    const now = this.now();
    const leaves: ExpiredLeave[] = [];
    for (const [key, entry] of this.sessions) {
      if (entry.expiresAtMs > now) break;
      this.sessions.delete(key);
      if (this.removeSession(entry)) leaves.push({ stream: entry.stream, id: entry.pid });
    }
    return leaves;
  }

  /** Session presences held (for tests and metrics). */
  get size(): number {
    return this.sessions.size;
  }
}
