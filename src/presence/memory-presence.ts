import type { ExpiredLeave, JoinOutcome, PresenceKey, PresenceSnapshot, PresenceStore } from './presence-store.js';
import { ExpiryOrder, type SessionPresence } from './expiry-order.js';

interface Member {
  info: string;
  readonly sids: Set<string>;
}

/**
 * Presence for one node. Members keep join order (the info reply lists them so); session presences
 * are kept in expiry order.
 */
export class MemoryPresence implements PresenceStore {
  private readonly streams = new Map<string, Map<string, Member>>();
  private readonly sessions = new ExpiryOrder();

  constructor(private readonly ttlS: number, private readonly now: () => number = Date.now) {}

  async join(stream: string, sid: string, pid: string, info: string): Promise<JoinOutcome> {
    return this.joinNow(stream, sid, pid, info);
  }

  joinNow(stream: string, sid: string, pid: string, info: string): JoinOutcome {
    const existing = this.sessions.get(stream, sid);
    if (existing && existing.pid !== pid) return { ok: false, error: 'id_mismatch' };
    this.sessions.set({ stream, sid, pid, expiresAtMs: this.now() + this.ttlS * 1000 });
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
    const entry = this.sessions.take(stream, sid);
    if (!entry) return null;
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
    for (const { stream, sid } of keys) this.sessions.touch(stream, sid, expiresAtMs);
  }

  async expire(): Promise<readonly ExpiredLeave[]> {
    return this.expireNow();
  }

  expireNow(): ExpiredLeave[] {
    const leaves: ExpiredLeave[] = [];
    for (const entry of this.sessions.takeExpired(this.now())) {
      if (this.removeSession(entry)) leaves.push({ stream: entry.stream, id: entry.pid });
    }
    return leaves;
  }

  /** Session presences held (for tests and metrics). */
  get size(): number {
    return this.sessions.size;
  }
}
