import { createHash } from 'node:crypto';
import {
  DiscardPolicy, nanos, StorageType,
  type JetStreamClient, type JetStreamManager, type KV, type NatsConnection, type StoredMsg,
} from 'nats';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { NatsLink, streamSubject } from './nats-connection.js';
import { NatsPresence } from '../presence/nats-presence.js';
import { DEFAULT_PRESENCE_TTL_S } from '../presence/presence-store.js';
import type { Broker, BrokerOptions, HistoryEntry, HistoryRead, HistoryStore, SessionStore, StreamPosition } from './broker.js';

/** Requests to JetStream give up after this; the caller then answers without history. */
const REQUEST_TIMEOUT_MS = 3000;
/** KV keys allow only these characters; anything else can't be a sid we issued. */
const KV_KEY = /^[-/_=.a-zA-Z0-9]+$/;

export interface NatsBrokerNames {
  /** JetStream stream holding every stream's history, one subject per stream. */
  readonly historyStream: string;
  readonly subjectPrefix: string;
  /** KV bucket of session snapshots. */
  readonly sessionsBucket: string;
  /** KV bucket of presence records. */
  readonly presenceBucket: string;
}

export const NATS_BROKER_NAMES: NatsBrokerNames = {
  historyStream: 'CABLECAT_HISTORY',
  subjectPrefix: 'cablecat.history',
  sessionsBucket: 'cablecat_sessions',
  presenceBucket: 'cablecat_presence',
};

type DirectQuery = { seq: number } | { last_by_subj: string } | { seq: number; next_by_subj: string };
/** nats.js has direct get on the manager at runtime but does not export its type. */
interface DirectGet {
  getMessage(stream: string, query: DirectQuery): Promise<StoredMsg>;
}

function directOf(jsm: JetStreamManager): DirectGet {
  const direct = (jsm as unknown as { direct?: DirectGet }).direct;
  if (!direct) throw new Error('this nats.js has no direct get');
  return direct;
}

/** The epoch of one life of the JetStream stream: every node derives the same one from its creation time. */
function epochOf(created: string): string {
  return createHash('sha256').update(created).digest('base64url').slice(0, 8);
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '404' || code === 404 || /not found|no message/i.test(String(err));
}

/**
 * History in one JetStream stream: a subject per cablecat stream, at most history_limit messages per
 * subject, each for history_ttl. An offset is the JetStream sequence (it grows across subjects, so a
 * read checks that the client's own last message is still kept: then nothing after it was evicted).
 */
export class NatsHistory implements HistoryStore {
  private jsm: JetStreamManager | null = null;
  private direct: DirectGet | null = null;
  private js: JetStreamClient | null = null;
  private epoch = '';
  private ensuring: Promise<void> | null = null;

  constructor(private readonly names: NatsBrokerNames, private readonly opts: BrokerOptions, private readonly log: Logger) {}

  get ready(): boolean {
    return this.epoch !== '';
  }

  async attach(connection: NatsConnection): Promise<void> {
    this.jsm = await connection.jetstreamManager({ timeout: REQUEST_TIMEOUT_MS });
    this.direct = directOf(this.jsm);
    this.js = connection.jetstream({ timeout: REQUEST_TIMEOUT_MS });
    await this.ensureStream();
  }

  /** Creates the stream if it is missing (first start, or lost by the server) and learns its epoch. */
  ensureStream(): Promise<void> {
    this.ensuring ??= this.createOrBind().finally(() => { this.ensuring = null; });
    return this.ensuring;
  }

  private async createOrBind(): Promise<void> {
    const jsm = this.jsm;
    if (!jsm) throw new Error('not connected to nats');
    const config = {
      name: this.names.historyStream,
      subjects: [`${this.names.subjectPrefix}.>`],
      max_msgs_per_subject: this.opts.historyLimit,
      max_age: nanos(this.opts.historyTtlS * 1000),
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      allow_direct: true,
    };
    let info;
    try {
      info = await jsm.streams.info(this.names.historyStream);
      const c = info.config;
      if (c.max_msgs_per_subject !== config.max_msgs_per_subject || c.max_age !== config.max_age || !c.allow_direct) {
        info = await jsm.streams.update(this.names.historyStream, { ...c, ...config });
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
      info = await jsm.streams.add(config);
    }
    const epoch = epochOf(info.created);
    if (epoch !== this.epoch) this.log.info({ epoch }, 'history stream bound');
    this.epoch = epoch;
  }

  private subject(stream: string): string {
    return streamSubject(this.names.subjectPrefix, stream);
  }

  async append(stream: string, data: string): Promise<StreamPosition> {
    const js = this.js;
    if (!js || !this.ready) throw new Error('nats history is not ready');
    const subject = this.subject(stream);
    let ack;
    try {
      ack = await js.publish(subject, data);
    } catch (err) {
      // The server may have lost the stream (memory store, restart): make it again under a new epoch.
      this.log.warn({ err: String(err) }, 'history publish failed, rebinding the stream');
      await this.ensureStream();
      ack = await js.publish(subject, data);
    }
    return { epoch: this.epoch, offset: ack.seq };
  }

  async readFrom(stream: string, position: StreamPosition): Promise<HistoryRead> {
    if (!this.jsm || !this.ready) return { ok: false, miss: 'unavailable' };
    if (position.epoch !== this.epoch) return { ok: false, miss: 'unknown_epoch' };
    const subject = this.subject(stream);
    try {
      const last = await this.get({ last_by_subj: subject });
      if (last === null) return { ok: false, miss: 'evicted' };
      if (position.offset > last.seq) return { ok: false, miss: 'offset_ahead' };
      if (position.offset === last.seq) return { ok: true, entries: [] };
      const own = await this.get({ seq: position.offset });
      if (own === null || own.subject !== subject) return { ok: false, miss: 'evicted' };
      return { ok: true, entries: await this.collect(subject, position.offset + 1, last.seq, 0) };
    } catch (err) {
      this.log.warn({ err: String(err) }, 'history read failed');
      return { ok: false, miss: 'unavailable' };
    }
  }

  async readSince(stream: string, sinceS: number): Promise<HistoryRead> {
    if (!this.jsm || !this.ready) return { ok: false, miss: 'unavailable' };
    const subject = this.subject(stream);
    try {
      const last = await this.get({ last_by_subj: subject });
      if (last === null) return { ok: true, entries: [] };
      return { ok: true, entries: await this.collect(subject, 1, last.seq, sinceS * 1000) };
    } catch (err) {
      this.log.warn({ err: String(err) }, 'history read failed');
      return { ok: false, miss: 'unavailable' };
    }
  }

  /** Messages of `subject` from sequence `from` up to `to`, stored at or after `sinceMs`. */
  private async collect(subject: string, from: number, to: number, sinceMs: number): Promise<HistoryEntry[]> {
    const out: HistoryEntry[] = [];
    let seq = from;
    // At most history_limit messages per subject are kept, so this loop is bounded by it.
    while (seq <= to) {
      const msg = await this.get({ seq, next_by_subj: subject });
      if (msg === null || msg.seq > to) break;
      if (msg.time.getTime() >= sinceMs) out.push({ epoch: this.epoch, offset: msg.seq, data: msg.string() });
      seq = msg.seq + 1;
    }
    return out;
  }

  private async get(query: DirectQuery): Promise<StoredMsg | null> {
    if (!this.direct) throw new Error('not connected to nats');
    try {
      return await this.direct.getMessage(this.names.historyStream, query);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }
}

/** Session snapshots in a KV bucket whose entries live sessions_ttl. */
export class NatsSessions implements SessionStore {
  private kv: KV | null = null;
  private connection: NatsConnection | null = null;

  constructor(private readonly bucket: string, private readonly ttlS: number) {}

  async attach(connection: NatsConnection): Promise<void> {
    if (this.ttlS <= 0) return;
    this.connection = connection;
    await this.bind();
  }

  /** Creates the bucket when missing (first start, or lost by the server) and binds to it. */
  private async bind(): Promise<KV> {
    if (!this.connection) throw new Error('not connected to nats');
    const js = this.connection.jetstream({ timeout: REQUEST_TIMEOUT_MS });
    this.kv = await js.views.kv(this.bucket, { ttl: this.ttlS * 1000, history: 1 });
    return this.kv;
  }

  async commit(sid: string, snapshot: string): Promise<void> {
    if (!this.kv || !KV_KEY.test(sid)) return;
    try {
      await this.kv.put(sid, snapshot);
    } catch (err) {
      // The server may have lost the bucket (memory store, restart): make it again once.
      // 503 "no responders": nothing listens on the bucket's subject any more.
      const code = (err as { code?: unknown } | null)?.code;
      if (!isNotFound(err) && code !== '503') throw err;
      await (await this.bind()).put(sid, snapshot);
    }
  }

  async fetch(sid: string): Promise<string | null> {
    if (!this.kv || !KV_KEY.test(sid)) return null;
    try {
      const entry = await this.kv.get(sid);
      return entry && entry.operation === 'PUT' ? entry.string() : null;
    } catch {
      // A miss when NATS is unreachable: the client authenticates afresh.
      return null;
    }
  }
}

/** History in JetStream and sessions in a KV bucket, on the NATS that also carries pub/sub. */
export class NatsBroker implements Broker {
  readonly kind = 'nats';
  readonly history: NatsHistory;
  readonly sessions: NatsSessions;
  readonly presence: NatsPresence;
  private readonly link: NatsLink;
  private readonly log: Logger;
  private attached = false;

  constructor(servers: readonly string[], opts: BrokerOptions, metrics: Metrics, logger: Logger, names: NatsBrokerNames = NATS_BROKER_NAMES) {
    this.log = logger.child({ component: 'nats_broker' });
    this.link = new NatsLink(servers, 'broker', metrics, this.log);
    this.history = new NatsHistory(names, opts, this.log);
    this.sessions = new NatsSessions(names.sessionsBucket, opts.sessionsTtlS);
    this.presence = new NatsPresence(names.presenceBucket, opts.presenceTtlS ?? DEFAULT_PRESENCE_TTL_S);
  }

  async start(): Promise<void> {
    this.link.start();
    // In the background: start-up never waits for NATS.
    void this.link.connection$.then((connection) => this.attach(connection));
  }

  private async attach(connection: NatsConnection): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.history.attach(connection);
        await this.sessions.attach(connection);
        await this.presence.attach(connection);
        this.attached = true;
        return;
      } catch (err) {
        if (connection.isClosed()) return;
        this.log.warn({ err: String(err), attempt }, 'jetstream setup failed, retrying');
        await new Promise((r) => setTimeout(r, Math.min(250 * attempt, 2000)));
      }
    }
  }

  async shutdown(): Promise<void> {
    await this.link.close();
  }

  isReady(): boolean {
    return this.attached && this.link.isUp && this.history.ready;
  }
}
