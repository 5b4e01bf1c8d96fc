import type { Redis } from 'ioredis';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { connectRedis } from '../broker/redis-connection.js';
import type { RedisTarget } from '../broker/redis-endpoint.js';
import { encodePublication, type Publication } from '../broadcast/message.js';
import { readBrokerPayload } from '../broker/payload.js';
import type { Subscriber } from './subscriber.js';

const STREAM_PREFIX = 'cablecat:stream:';
const INTERNAL_CHANNEL = 'cablecat:internal';
/** Publications held while the subscribing connection is down; past this they are refused (and counted). */
const MAX_HELD = 10_000;
/** Backoff of a failed per-stream SUBSCRIBE (e.g. an ACL refusing the channel): doubles up to the cap. */
const RESUBSCRIBE_BASE_MS = 100;
const RESUBSCRIBE_MAX_MS = 2000;

/** Redis pub/sub between nodes: one channel per stream a node follows, one for remote commands. */
export class RedisSubscriber implements Subscriber {
  private readonly log: Logger;
  private publisher: Redis | null = null;
  private subscriber: Redis | null = null;
  /**
   * Publications wait here while the subscribing connection is down: published meanwhile through
   * the other connection, they would reach a channel this node is not yet listening on.
   */
  private readonly held: Array<[string, string]> = [];
  private listening = false;
  /** Streams this node follows: a failed SUBSCRIBE is retried while the stream is still wanted. */
  private readonly wanted = new Set<string>();
  private stopped = false;

  constructor(private readonly url: RedisTarget, private readonly metrics: Metrics, logger: Logger) {
    this.log = logger.child({ component: 'redis_pubsub' });
  }

  async start(deliver: (pub: Publication) => void): Promise<void> {
    this.publisher = connectRedis(this.url, 'pubsub_publish', this.metrics, this.log);
    this.subscriber = connectRedis(this.url, 'pubsub_subscribe', this.metrics, this.log);
    this.subscriber.on('message', (_channel: string, message: string) => {
      for (const pub of readBrokerPayload(message, this.metrics, this.log, true)) deliver(pub);
    });
    const subscriber = this.subscriber;
    subscriber.on('close', () => { this.listening = false; });
    subscriber.on('ready', () => {
      // ioredis has resubscribed the stream channels before 'ready'; once this SUBSCRIBE is
      // acknowledged, those are too, and held publications can go.
      subscriber.subscribe(INTERNAL_CHANNEL).then(() => {
        this.listening = true;
        for (const [channel, message] of this.held.splice(0)) this.send(channel, message);
      }, (err: unknown) => this.log.warn({ err: String(err) }, 'redis subscribe failed'));
    });
    // Never block start-up on a dead Redis: both connections keep trying in the background.
    this.publisher.connect().catch(() => undefined);
    subscriber.connect().catch(() => undefined);
  }

  publish(pub: Publication): boolean {
    const channel = pub.kind === 'broadcast' ? STREAM_PREFIX + pub.stream : INTERNAL_CHANNEL;
    const message = encodePublication(pub);
    if (this.listening) {
      this.send(channel, message);
    } else if (this.held.length < MAX_HELD) {
      this.held.push([channel, message]);
    } else {
      this.metrics.counters.failed_broadcast_msg_total++;
      this.log.warn('pub/sub publish refused: redis is down and the hold is full');
      return false;
    }
    return true;
  }

  private send(channel: string, message: string): void {
    // ioredis also queues while the publishing connection reconnects.
    this.publisher?.publish(channel, message).catch((err: unknown) => {
      this.metrics.counters.failed_broadcast_msg_total++;
      this.log.warn({ err: String(err) }, 'pub/sub publish failed');
    });
  }

  subscribeStream(stream: string): void {
    this.wanted.add(stream);
    this.subscribeWanted(stream, 0);
  }

  /**
   * ioredis resubscribes after a reconnect only the channels Redis acknowledged, so a refused
   * SUBSCRIBE would lose the stream for good: it is logged and retried while the stream is wanted.
   */
  private subscribeWanted(stream: string, attempt: number): void {
    const subscriber = this.subscriber;
    if (subscriber === null || this.stopped) return;
    subscriber.subscribe(STREAM_PREFIX + stream).then(() => {
      if (attempt > 0) this.log.info({ stream, attempts: attempt + 1 }, 'redis stream subscribe recovered');
    }, (err: unknown) => {
      if (!this.wanted.has(stream) || this.stopped) return;
      const delay = Math.min(RESUBSCRIBE_BASE_MS * 2 ** attempt, RESUBSCRIBE_MAX_MS);
      this.log.warn({ stream, err: String(err), retryInMs: delay }, 'redis stream subscribe failed');
      setTimeout(() => {
        if (this.wanted.has(stream)) this.subscribeWanted(stream, attempt + 1);
      }, delay).unref();
    });
  }

  unsubscribeStream(stream: string): void {
    this.wanted.delete(stream);
    this.subscriber?.unsubscribe(STREAM_PREFIX + stream).catch((err: unknown) => {
      // Harmless beyond traffic: messages of a stream nobody here follows find no route in the hub.
      this.log.warn({ stream, err: String(err) }, 'redis stream unsubscribe failed');
    });
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    this.subscriber?.disconnect();
    await this.publisher?.quit().catch(() => undefined);
  }
}
