import type { Redis } from 'ioredis';
import { pairKey, type ExpiredLeave, type JoinOutcome, type PresenceKey, type PresenceRecord, type PresenceSnapshot, type PresenceStore } from './presence-store.js';
import { withTimeout } from '../broker/with-timeout.js';

/** A presence call gives up after this, so a client is not held by a dead Redis. */
const CALL_TIMEOUT_MS = 3000;
/** Expired presences handled per round trip, and rounds per sweep (the rest waits for the next tick). */
const EXPIRE_BATCH = 500;
const EXPIRE_ROUNDS = 10;
/** Members per ZADD when touching many presences at once. */
const TOUCH_CHUNK = 1000;

/**
 * Adds a session's presence. KEYS: sids hash (sid → pid), counts hash (pid → sessions), info hash
 * (pid → info), expiry zset. ARGV: sid, pid, info, expires at ms, expiry member.
 * Returns -1 on a pid mismatch, 1 when the pid is new on the stream, else 0.
 */
const JOIN_SCRIPT = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and current ~= ARGV[2] then return -1 end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
if current then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then return 1 end
return 0
`;

/**
 * Removes a session's presence; KEYS as for join. ARGV: sid, expiry member, and a deadline ('' for an
 * explicit leave): an expiring presence touched meanwhile (score past the deadline) stays. The
 * member and the sid go together, so when several nodes sweep at once exactly one removes it.
 * Returns the pid when its last session left, else false.
 */
const LEAVE_SCRIPT = `
local score = redis.call('ZSCORE', KEYS[4], ARGV[2])
if not score then return false end
if ARGV[3] ~= '' and tonumber(score) > tonumber(ARGV[3]) then return false end
redis.call('ZREM', KEYS[4], ARGV[2])
local pid = redis.call('HGET', KEYS[1], ARGV[1])
if not pid then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[2], pid, -1) > 0 then return false end
redis.call('HDEL', KEYS[2], pid)
redis.call('HDEL', KEYS[3], pid)
return pid
`;

type ScriptCall = (...args: Array<string | number>) => Promise<unknown>;

/**
 * Presence in Redis, shared by every node: three hashes per stream and one sorted set of all
 * session presences by expiry time. Any node's sweep reads only the expired head of that set, and
 * the scripts make each change atomic, so a join or leave event is decided exactly once cluster-wide.
 * (If every node stops, the keys stay until a node sweeps again.)
 */
export class RedisPresence implements PresenceStore {
  private readonly joinScript: ScriptCall;
  private readonly leaveScript: ScriptCall;
  private readonly expiryKey: string;

  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly ttlS: number,
    private readonly now: () => number = Date.now,
    /** While Redis is unreachable calls fail at once: a queued join would land later without its event. */
    private readonly isUp: () => boolean = () => true,
  ) {
    client.defineCommand('cablecatPresenceJoin', { numberOfKeys: 4, lua: JOIN_SCRIPT });
    client.defineCommand('cablecatPresenceLeave', { numberOfKeys: 4, lua: LEAVE_SCRIPT });
    const commands = client as unknown as Record<string, ScriptCall | undefined>;
    const join = commands.cablecatPresenceJoin;
    const leave = commands.cablecatPresenceLeave;
    if (!join || !leave) throw new Error('ioredis did not define the presence commands');
    this.joinScript = join.bind(client);
    this.leaveScript = leave.bind(client);
    this.expiryKey = `${prefix}:presence:expiry`;
  }

  private checkUp(): void {
    if (!this.isUp()) throw new RedisDown();
  }

  private streamKeys(stream: string): [string, string, string, string] {
    const base = `${this.prefix}:presence:${stream}`;
    return [`${base}:sids`, `${base}:counts`, `${base}:info`, this.expiryKey];
  }

  async join(stream: string, sid: string, pid: string, info: string): Promise<JoinOutcome> {
    this.checkUp();
    const reply = await timed(
      this.joinScript(...this.streamKeys(stream), sid, pid, info, this.now() + this.ttlS * 1000, pairKey(stream, sid)),
    );
    if (reply === -1) return { ok: false, error: 'id_mismatch' };
    return { ok: true, joined: reply === 1 };
  }

  async leave(stream: string, sid: string): Promise<string | null> {
    this.checkUp();
    const reply = await timed(this.leaveScript(...this.streamKeys(stream), sid, pairKey(stream, sid), ''));
    return typeof reply === 'string' ? reply : null;
  }

  async info(stream: string): Promise<PresenceSnapshot> {
    this.checkUp();
    const all = await timed(this.client.hgetall(this.streamKeys(stream)[2]));
    const records: PresenceRecord[] = Object.entries(all).map(([id, info]) => ({ id, info }));
    return { total: records.length, records };
  }

  async touch(keys: readonly PresenceKey[]): Promise<void> {
    if (keys.length === 0) return;
    this.checkUp();
    const score = this.now() + this.ttlS * 1000;
    const pipeline = this.client.pipeline();
    for (let i = 0; i < keys.length; i += TOUCH_CHUNK) {
      const args: Array<string | number> = [];
      for (const { stream, sid } of keys.slice(i, i + TOUCH_CHUNK)) args.push(score, pairKey(stream, sid));
      // XX: a presence that expired (or left) meanwhile is not brought back.
      pipeline.zadd(this.expiryKey, 'XX', ...args);
    }
    await timed(pipeline.exec());
  }

  async expire(): Promise<readonly ExpiredLeave[]> {
    this.checkUp();
    const leaves: ExpiredLeave[] = [];
    for (let round = 0; round < EXPIRE_ROUNDS; round++) {
      const deadline = this.now();
      const due = await timed(this.client.zrangebyscore(this.expiryKey, '-inf', deadline, 'LIMIT', 0, EXPIRE_BATCH));
      if (due.length === 0) break;
      const pipeline = this.client.pipeline();
      // One queued command per due member, so results[i] answers due[i].
      const pairs = due.map(parseMember);
      due.forEach((m, i) => {
        const pair = pairs[i];
        if (pair) pipeline.cablecatPresenceLeave(...this.streamKeys(pair.stream), pair.sid, m, deadline);
        else pipeline.zrem(this.expiryKey, m);
      });
      const results = (await timed(pipeline.exec())) ?? [];
      pairs.forEach((pair, i) => {
        const [err, pid] = results[i] ?? [null, null];
        if (pair && !err && typeof pid === 'string') leaves.push({ stream: pair.stream, id: pid });
      });
      if (due.length < EXPIRE_BATCH) break;
    }
    return leaves;
  }
}

declare module 'ioredis' {
  interface ChainableCommander {
    cablecatPresenceLeave(...args: Array<string | number>): ChainableCommander;
  }
}

/** The pair back from an expiry member (see pairKey). */
function parseMember(text: string): PresenceKey | null {
  try {
    const value: unknown = JSON.parse(text);
    if (Array.isArray(value) && typeof value[0] === 'string' && typeof value[1] === 'string') return { stream: value[0], sid: value[1] };
  } catch {
    // Not ours: dropped by the caller.
  }
  return null;
}

class RedisDown extends Error {
  constructor() {
    super('redis is unreachable');
  }
}

function timed<T>(promise: Promise<T>): Promise<T> {
  return withTimeout(promise, CALL_TIMEOUT_MS, 'redis presence call');
}
