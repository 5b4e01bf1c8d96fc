import type { Redis } from 'ioredis';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { connectRedis } from '../broker/redis-connection.js';
import { encodePublication, type Publication } from '../broadcast/message.js';
import { readBrokerPayload } from '../broker/payload.js';
import type { Subscriber } from './subscriber.js';

const STREAM_PREFIX = 'cablecat:stream:';
const INTERNAL_CHANNEL = 'cablecat:internal';

/** Redis pub/sub between nodes: one channel per stream a node follows, one for remote commands. */
export class RedisSubscriber implements Subscriber {
  private readonly log: Logger;
  private publisher: Redis | null = null;
  private subscriber: Redis | null = null;

  constructor(private readonly url: string, private readonly metrics: Metrics, logger: Logger) {
    this.log = logger.child({ component: 'redis_pubsub' });
  }

  async start(deliver: (pub: Publication) => void): Promise<void> {
    this.publisher = connectRedis(this.url, 'pubsub_publish', this.metrics, this.log);
    this.subscriber = connectRedis(this.url, 'pubsub_subscribe', this.metrics, this.log);
    this.subscriber.on('message', (_channel: string, message: string) => {
      for (const pub of readBrokerPayload(message, this.metrics, this.log)) deliver(pub);
    });
    this.publisher.connect().catch(() => undefined);
    this.subscriber.connect().catch(() => undefined);
    await this.subscriber.subscribe(INTERNAL_CHANNEL).catch(() => undefined);
  }

  publish(pub: Publication): void {
    const channel = pub.kind === 'broadcast' ? STREAM_PREFIX + pub.stream : INTERNAL_CHANNEL;
    // ioredis queues while reconnecting, so an accepted broadcast survives a short Redis outage.
    this.publisher?.publish(channel, encodePublication(pub)).catch((err: unknown) => {
      this.metrics.counters.failed_broadcast_msg_total++;
      this.log.warn({ err: String(err) }, 'pub/sub publish failed');
    });
  }

  subscribeStream(stream: string): void {
    this.subscriber?.subscribe(STREAM_PREFIX + stream).catch(() => undefined);
  }

  unsubscribeStream(stream: string): void {
    this.subscriber?.unsubscribe(STREAM_PREFIX + stream).catch(() => undefined);
  }

  async shutdown(): Promise<void> {
    this.subscriber?.disconnect();
    await this.publisher?.quit().catch(() => undefined);
  }
}
