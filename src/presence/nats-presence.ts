import { nanos, type KV, type KvEntry, type NatsConnection, type QueuedIterator } from 'nats';
import type { ExpiredLeave, JoinOutcome, PresenceKey, PresenceRecord, PresenceSnapshot, PresenceStore } from './presence-store.js';
import { ExpiryOrder, type SessionPresence } from './expiry-order.js';

/** Requests to JetStream give up after this. */
const REQUEST_TIMEOUT_MS = 3000;
/** Compare-and-set attempts before a write is given up (only contended by the same pid's sessions). */
const CAS_ATTEMPTS = 20;
/** The bucket keeps an untouched record at least this long (seconds), whatever the TTL. */
const MIN_BUCKET_AGE_S = 60;
/** Records rewritten at once while touching. */
const TOUCH_PARALLEL = 32;

/** One member (stream, pid) as stored: its info and each session's expiry time. */
interface StoredMember {
  i: string;
  s: Record<string, number>;
}

function encodeToken(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url') || '_';
}

function decodeToken(token: string): string {
  return token === '_' ? '' : Buffer.from(token, 'base64url').toString('utf8');
}

function readMember(entry: KvEntry | null): StoredMember | null {
  if (!entry || entry.operation !== 'PUT') return null;
  try {
    const value = entry.json<unknown>();
    if (typeof value !== 'object' || value === null) return null;
    const { i, s } = value as Record<string, unknown>;
    if (typeof i !== 'string' || typeof s !== 'object' || s === null) return null;
    const sessions: Record<string, number> = {};
    for (const [sid, exp] of Object.entries(s)) if (typeof exp === 'number') sessions[sid] = exp;
    return { i, s: sessions };
  } catch {
    return null;
  }
}

/**
 * Drops sessions expired before `before`. The owner node sweeps its own within a tick of their expiry
 * (and reports the leave), so the others only drop sessions a TTL past expiry: their node is gone.
 */
function liveSessions(member: StoredMember, before: number): Record<string, number> {
  const live: Record<string, number> = {};
  for (const [sid, exp] of Object.entries(member.s)) if (exp > before) live[sid] = exp;
  return live;
}

class Conflict extends Error {}

/** What a change leaves in place: the record as it was (no write). */
const KEEP = Symbol('keep');

/**
 * Presence in a NATS KV bucket shared by every node: one key per (stream, pid) holding the info and
 * each of its sessions with an expiry time, changed by compare-and-set (only sessions of the same
 * pid contend). A session lives on one node, so that node keeps its sessions' presences in a map
 * ordered by expiry: it touches and expires its own without scanning the bucket. Sessions of a node
 * that died are dropped by the next write or read of their record; the bucket's max age (4 TTLs,
 * at least a minute; renewed by every touch) removes a record nobody touches any more.
 */
export class NatsPresence implements PresenceStore {
  private kv: KV | null = null;
  private readonly local = new ExpiryOrder();

  constructor(private readonly bucket: string, private readonly ttlS: number, private readonly now: () => number = Date.now) {}

  get ready(): boolean {
    return this.kv !== null;
  }

  async attach(connection: NatsConnection): Promise<void> {
    const js = connection.jetstream({ timeout: REQUEST_TIMEOUT_MS });
    // Records are rewritten every TTL/2 while their sessions live: the bucket's max age only removes
    // records nobody touches any more. An existing bucket keeps its settings, so a shorter one is raised.
    const maxAgeMs = Math.max(this.ttlS * 4, MIN_BUCKET_AGE_S) * 1000;
    const kv = await js.views.kv(this.bucket, { history: 1, ttl: maxAgeMs });
    if ((await kv.status()).ttl < maxAgeMs) {
      const jsm = await connection.jetstreamManager({ timeout: REQUEST_TIMEOUT_MS });
      const stream = `KV_${this.bucket}`;
      const info = await jsm.streams.info(stream);
      await jsm.streams.update(stream, { ...info.config, max_age: nanos(maxAgeMs) });
    }
    this.kv = kv;
  }

  /** Sessions that expired before this belong to a node that stopped (see liveSessions). */
  private orphanedBefore(): number {
    return this.now() - this.ttlS * 1000;
  }

  private store(): KV {
    if (!this.kv) throw new Error('nats presence is not ready');
    return this.kv;
  }

  private key(stream: string, pid: string): string {
    return `${encodeToken(stream)}.${encodeToken(pid)}`;
  }

  /** Reads, changes and writes one member record, retrying when another node wrote in between. */
  private async change<T>(stream: string, pid: string, apply: (member: StoredMember | null) => { next: StoredMember | null | typeof KEEP; result: T }): Promise<T> {
    const kv = this.store();
    const key = this.key(stream, pid);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await kv.get(key);
      const current = readMember(entry);
      const { next, result } = apply(current);
      if (next === KEEP) return result;
      try {
        if (next === null) {
          if (entry && entry.operation === 'PUT') await kv.delete(key, { previousSeq: entry.revision });
        } else if (entry) {
          await kv.update(key, JSON.stringify(next), entry.revision);
        } else {
          await kv.create(key, JSON.stringify(next));
        }
        return result;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    throw new Conflict(`presence record of ${pid} kept changing`);
  }

  async join(stream: string, sid: string, pid: string, info: string): Promise<JoinOutcome> {
    const existing = this.local.get(stream, sid);
    if (existing && existing.pid !== pid) return { ok: false, error: 'id_mismatch' };
    const expiresAtMs = this.now() + this.ttlS * 1000;
    const joined = await this.change(stream, pid, (member) => {
      const live = member ? liveSessions(member, this.orphanedBefore()) : {};
      const isNew = Object.keys(live).length === 0;
      live[sid] = expiresAtMs;
      return { next: { i: info, s: live }, result: isNew };
    });
    this.local.set({ stream, sid, pid, expiresAtMs });
    return { ok: true, joined };
  }

  async leave(stream: string, sid: string): Promise<string | null> {
    const entry = this.local.take(stream, sid);
    if (!entry) return null;
    return (await this.removeRemote(entry)) ? entry.pid : null;
  }

  /** True when the session was the pid's last live one on the stream. */
  private removeRemote(entry: SessionPresence): Promise<boolean> {
    return this.change(entry.stream, entry.pid, (member) => {
      if (!member || !(entry.sid in member.s)) return { next: KEEP, result: false };
      const live = liveSessions(member, this.orphanedBefore());
      delete live[entry.sid];
      if (Object.keys(live).length > 0) return { next: { i: member.i, s: live }, result: false };
      return { next: null, result: true };
    });
  }

  async info(stream: string): Promise<PresenceSnapshot> {
    const kv = this.store();
    const before = this.orphanedBefore();
    const records: PresenceRecord[] = [];
    // The watch lists the current records, then calls initializedFn (queued after the last one, or
    // at once when there are none); stopping there ends the iteration once the queue is drained.
    // Deletes are not skipped by the watch: a skipped last entry would never signal the end.
    let watch: QueuedIterator<KvEntry> | null = null;
    let initialized = false;
    watch = await kv.watch({ key: `${encodeToken(stream)}.*`, initializedFn: () => { initialized = true; watch?.stop(); } });
    if (initialized) watch.stop();
    const timer = setTimeout(() => watch?.stop(), REQUEST_TIMEOUT_MS);
    try {
      for await (const entry of watch) {
        const member = readMember(entry);
        const pidToken = entry.key.slice(entry.key.indexOf('.') + 1);
        if (member && Object.values(member.s).some((exp) => exp > before)) records.push({ id: decodeToken(pidToken), info: member.i });
      }
    } finally {
      clearTimeout(timer);
      watch.stop();
    }
    if (!initialized) throw new Error('nats presence listing timed out');
    return { total: records.length, records };
  }

  async touch(keys: readonly PresenceKey[]): Promise<void> {
    const expiresAtMs = this.now() + this.ttlS * 1000;
    const due: SessionPresence[] = [];
    for (const { stream, sid } of keys) {
      const entry = this.local.touch(stream, sid, expiresAtMs);
      if (entry) due.push(entry);
    }
    for (let i = 0; i < due.length; i += TOUCH_PARALLEL) {
      await Promise.all(due.slice(i, i + TOUCH_PARALLEL).map((entry) => this.change(entry.stream, entry.pid, (member) => {
        // Not brought back when it was dropped meanwhile.
        if (!member || !(entry.sid in member.s)) return { next: KEEP, result: undefined };
        return { next: { i: member.i, s: { ...liveSessions(member, this.orphanedBefore()), [entry.sid]: expiresAtMs } }, result: undefined };
      })));
    }
  }

  async expire(): Promise<readonly ExpiredLeave[]> {
    const due = this.local.takeExpired(this.now());
    const leaves: ExpiredLeave[] = [];
    for (const entry of due) {
      if (await this.removeRemote(entry)) leaves.push({ stream: entry.stream, id: entry.pid });
    }
    return leaves;
  }
}

/** JetStream answers a failed compare-and-set with "wrong last sequence" (or "key exists" on create). */
function isConflict(err: unknown): boolean {
  return /wrong last sequence|key exists|10071|10164/i.test(String((err as { message?: unknown } | null)?.message ?? err));
}
