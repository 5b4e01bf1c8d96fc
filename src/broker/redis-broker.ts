import type { Redis } from 'ioredis';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { connectRedis } from './redis-connection.js';
import type { RedisTarget } from './redis-endpoint.js';
import type { Broker, BrokerOptions, HistoryEntry, HistoryRead, HistoryStore, SessionStore, StreamPosition } from './broker.js';
import { STREAM_META_TTL_FACTOR } from './broker.js';
import { newEpoch } from './epoch.js';
import { RedisPresence } from '../presence/redis-presence.js';
import { DEFAULT_PRESENCE_TTL_S } from '../presence/presence-store.js';
import { withTimeout } from './with-timeout.js';

/** Reads give up after this, so a client waiting for history or a restore is not held by a dead Redis. */
const READ_TIMEOUT_MS = 3000;
/** Default key prefix; tests give their own. */
export const REDIS_BROKER_PREFIX = 'cablecat:broker';

/**
 * One atomic step per broadcast: take the stream's epoch (a new one, and a fresh Redis Stream, when
 * its metadata is gone), bump its offset, XADD the message with the offset as its id, and refresh
 * both TTLs. Offsets are contiguous, so a gap in a read means messages were evicted.
 * KEYS: meta hash, history stream. ARGV: new epoch, data, now ms, limit, history ttl ms, meta ttl ms.
 */
const APPEND_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], offset .. '-1', 't', ARGV[3], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {epoch, offset}
`;

type XEntry = [id: string, fields: string[]];

interface RawStream {
  readonly epoch: string | null;
  readonly last: number;
  readonly entries: readonly XEntry[];
}

/**
 * History in Redis Streams (one per stream, ids `<offset>-1`, fields t = ms, d = data) next to a
 * hash with the epoch and last offset: any node can append and any node can read.
 */
export class RedisHistory implements HistoryStore {
  private readonly appendCommand: (meta: string, key: string, ...args: Array<string | number>) => Promise<unknown>;

  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly opts: BrokerOptions,
    private readonly isUp: () => boolean,
    private readonly now: () => number = Date.now,
  ) {
    client.defineCommand('cablecatAppend', { numberOfKeys: 2, lua: APPEND_SCRIPT });
    const command = (client as unknown as Record<string, (...args: Array<string | number>) => Promise<unknown>>).cablecatAppend;
    if (!command) throw new Error('ioredis did not define the append command');
    this.appendCommand = command.bind(client);
  }

  private metaKey(stream: string): string {
    return `${this.prefix}:meta:${stream}`;
  }

  private historyKey(stream: string): string {
    return `${this.prefix}:history:${stream}`;
  }

  /** While Redis is down the command waits in ioredis's queue: the broadcast is held, not lost. */
  async append(stream: string, data: string): Promise<StreamPosition> {
    const ttlMs = this.opts.historyTtlS * 1000;
    const reply = await this.appendCommand(this.metaKey(stream), this.historyKey(stream),
      newEpoch(), data, this.now(), this.opts.historyLimit, ttlMs, ttlMs * STREAM_META_TTL_FACTOR);
    if (!Array.isArray(reply) || typeof reply[0] !== 'string' || typeof reply[1] !== 'number') {
      throw new Error('unexpected reply from the append script');
    }
    return { epoch: reply[0], offset: reply[1] };
  }

  async readFrom(stream: string, position: StreamPosition): Promise<HistoryRead> {
    const raw = await this.read(stream, `${position.offset + 1}-1`);
    if (raw === null) return { ok: false, miss: 'unavailable' };
    if (raw.epoch === null || raw.epoch !== position.epoch) return { ok: false, miss: 'unknown_epoch' };
    if (position.offset > raw.last) return { ok: false, miss: 'offset_ahead' };
    if (position.offset === raw.last) return { ok: true, entries: [] };
    const entries = this.fresh(raw, 0);
    const first = entries[0];
    if (!first || first.offset !== position.offset + 1) return { ok: false, miss: 'evicted' };
    return { ok: true, entries };
  }

  async readSince(stream: string, sinceS: number): Promise<HistoryRead> {
    const raw = await this.read(stream, '-');
    if (raw === null) return { ok: false, miss: 'unavailable' };
    return { ok: true, entries: raw.epoch === null ? [] : this.fresh(raw, sinceS * 1000) };
  }

  private async read(stream: string, from: string): Promise<RawStream | null> {
    if (!this.isUp()) return null;
    const result = await withTimeout(
      this.client.multi().hmget(this.metaKey(stream), 'e', 'o').xrange(this.historyKey(stream), from, '+').exec(),
      READ_TIMEOUT_MS,
    ).catch(() => null);
    if (!result) return null;
    const [metaReply, rangeReply] = result;
    if (!metaReply || !rangeReply || metaReply[0] || rangeReply[0]) return null;
    const [epoch, last] = metaReply[1] as [string | null, string | null];
    return { epoch, last: Number(last ?? 0), entries: rangeReply[1] as XEntry[] };
  }

  /** Entries within the TTL and at or after `fromMs`, oldest first. */
  private fresh(raw: RawStream, fromMs: number): HistoryEntry[] {
    const since = Math.max(fromMs, this.now() - this.opts.historyTtlS * 1000);
    const out: HistoryEntry[] = [];
    for (const [id, fields] of raw.entries) {
      const at = Number(field(fields, 't'));
      if (at < since) continue;
      out.push({ epoch: raw.epoch ?? '', offset: Number.parseInt(id, 10), data: field(fields, 'd') });
    }
    return out;
  }
}

function field(fields: readonly string[], name: string): string {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1] ?? '';
  return '';
}

/** Session snapshots as plain keys with a TTL (SET … PX). */
export class RedisSessions implements SessionStore {
  constructor(private readonly client: Redis, private readonly prefix: string, private readonly ttlS: number, private readonly isUp: () => boolean) {}

  private key(sid: string): string {
    return `${this.prefix}:session:${sid}`;
  }

  async commit(sid: string, snapshot: string): Promise<void> {
    if (this.ttlS <= 0) return;
    await this.client.set(this.key(sid), snapshot, 'PX', this.ttlS * 1000);
  }

  /** A miss when Redis is down: the client authenticates afresh instead of waiting. */
  async fetch(sid: string): Promise<string | null> {
    if (this.ttlS <= 0 || !this.isUp()) return null;
    return withTimeout(this.client.get(this.key(sid)), READ_TIMEOUT_MS).catch(() => null);
  }
}

/** History and sessions in Redis: every node shares them, so any node serves any client. */
export class RedisBroker implements Broker {
  readonly kind = 'redis';
  readonly history: RedisHistory;
  readonly sessions: RedisSessions;
  readonly presence: RedisPresence;
  private readonly client: Redis;
  private up = false;

  constructor(url: RedisTarget, opts: BrokerOptions, metrics: Metrics, logger: Logger, prefix = REDIS_BROKER_PREFIX, now: () => number = Date.now) {
    const log = logger.child({ component: 'redis_broker' });
    this.client = connectRedis(url, 'broker', metrics, log);
    this.client.on('ready', () => { this.up = true; });
    this.client.on('close', () => { this.up = false; });
    const isUp = (): boolean => this.up;
    this.history = new RedisHistory(this.client, prefix, opts, isUp, now);
    this.sessions = new RedisSessions(this.client, prefix, opts.sessionsTtlS, isUp);
    this.presence = new RedisPresence(this.client, prefix, opts.presenceTtlS ?? DEFAULT_PRESENCE_TTL_S, now, isUp);
  }

  async start(): Promise<void> {
    // In the background: a dead Redis must not block start-up (appends wait in the queue meanwhile).
    this.client.connect().catch(() => undefined);
  }

  async shutdown(): Promise<void> {
    // QUIT lets appends already sent finish; a dead Redis would keep it waiting, so it is bounded.
    await withTimeout(this.client.quit(), 1000).catch(() => this.client.disconnect());
  }

  isReady(): boolean {
    return this.up;
  }
}
