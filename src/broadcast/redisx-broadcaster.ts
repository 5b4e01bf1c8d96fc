import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { connectRedis } from '../broker/redis-connection.js';
import type { RedisTarget } from '../broker/redis-endpoint.js';
import { readBrokerPayload } from '../broker/payload.js';
import type { Publication } from './message.js';
import type { Broadcaster } from './broadcaster.js';

export interface RedisxOptions {
  readonly url: RedisTarget;
  /** The Redis Stream the app XADDs to (`payload` field = the broadcast JSON). */
  readonly stream: string;
  readonly group: string;
  /** How long one XREADGROUP waits for entries. */
  readonly blockMs?: number;
  /** Entries a dead consumer left unacknowledged this long are claimed by a live one. */
  readonly claimIdleMs?: number;
}

const BATCH = 100;

type StreamReply = Array<[stream: string, entries: Array<[id: string, fields: string[]]>]> | null;

/**
 * Broadcasts from a Redis Stream read through a consumer group (anycable-go's and the anycable
 * gem's `redisx`): each entry reaches ONE node, which passes it on through the broker and pub/sub,
 * so with a broker every broadcast is stored once. Handled entries are acknowledged and deleted;
 * entries a crashed node left pending are claimed after a while.
 */
export class RedisxBroadcaster implements Broadcaster {
  private client: Redis | null = null;
  private running = false;
  private readonly consumer = `cablecat-${randomBytes(6).toString('hex')}`;
  private readonly log: Logger;
  private loop: Promise<void> = Promise.resolve();
  private groupReady = false;

  constructor(
    private readonly opts: RedisxOptions,
    /** Point-source handler: the publication goes through pub/sub so every node gets it. */
    private readonly accept: (pubs: readonly Publication[]) => void,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'redisx_broadcast', stream: opts.stream });
  }

  async start(): Promise<void> {
    const client = connectRedis(this.opts.url, 'broadcast', this.metrics, this.log);
    this.client = client;
    // Redis may have lost the group (restart without persistence): make it again after each reconnect.
    client.on('ready', () => { this.groupReady = false; });
    client.connect().catch(() => undefined);
    this.running = true;
    this.loop = this.run(client);
  }

  private async run(client: Redis): Promise<void> {
    let lastClaim = 0;
    while (this.running) {
      try {
        if (!this.groupReady) await this.createGroup(client);
        const claimIdle = this.opts.claimIdleMs ?? 30_000;
        if (Date.now() - lastClaim >= claimIdle) {
          lastClaim = Date.now();
          await this.claimStale(client, claimIdle);
        }
        const reply = (await client.xreadgroup('GROUP', this.opts.group, this.consumer, 'COUNT', BATCH,
          'BLOCK', this.opts.blockMs ?? 2000, 'STREAMS', this.opts.stream, '>')) as StreamReply;
        for (const [, entries] of reply ?? []) await this.handle(client, entries);
      } catch (err) {
        if (!this.running) return;
        if (/NOGROUP/.test(String(err))) this.groupReady = false;
        else this.log.warn({ err: String(err) }, 'redisx read failed');
        // ioredis waits for the reconnection itself; this only spaces out errors.
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  private async createGroup(client: Redis): Promise<void> {
    try {
      await client.xgroup('CREATE', this.opts.stream, this.opts.group, '$', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test(String(err))) throw err;
    }
    this.groupReady = true;
  }

  private async claimStale(client: Redis, idleMs: number): Promise<void> {
    const reply = (await client.xautoclaim(this.opts.stream, this.opts.group, this.consumer, idleMs, '0-0', 'COUNT', BATCH)) as [string, Array<[string, string[]] | null>];
    const entries = (reply[1] ?? []).filter((e): e is [string, string[]] => e !== null);
    if (entries.length > 0) {
      this.log.info({ count: entries.length }, 'claimed broadcasts left by another node');
      await this.handle(client, entries);
    }
  }

  private async handle(client: Redis, entries: ReadonlyArray<[string, string[]]>): Promise<void> {
    if (entries.length === 0) return;
    for (const [, fields] of entries) {
      const at = fields.indexOf('payload');
      const payload = at >= 0 && at % 2 === 0 ? fields[at + 1] : undefined;
      if (payload === undefined) {
        this.metrics.counters.failed_broadcast_msg_total++;
        this.log.warn('redisx entry without a payload field');
        continue;
      }
      const pubs = readBrokerPayload(payload, this.metrics, this.log);
      if (pubs.length > 0) this.accept(pubs);
    }
    const ids = entries.map(([id]) => id);
    await client.xack(this.opts.stream, this.opts.group, ...ids);
    await client.xdel(this.opts.stream, ...ids);
  }

  async shutdown(): Promise<void> {
    this.running = false;
    // A blocked XREADGROUP would hold the connection for blockMs: drop it.
    this.client?.disconnect();
    await this.loop;
  }
}
