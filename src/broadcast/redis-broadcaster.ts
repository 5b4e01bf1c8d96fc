import type { Redis } from 'ioredis';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { connectRedis } from '../broker/redis-connection.js';
import type { RedisTarget } from '../broker/redis-endpoint.js';
import { readBrokerPayload } from '../broker/payload.js';
import type { Broadcaster, FanoutHandler } from './broadcaster.js';

/** SUBSCRIBE on the broadcast channel (`__anycable__`): what the anycable gem's redis adapter PUBLISHes. */
export class RedisBroadcaster implements Broadcaster {
  private client: Redis | null = null;
  private readonly log: Logger;

  constructor(
    private readonly url: RedisTarget,
    private readonly channel: string,
    private readonly handler: FanoutHandler,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'redis_broadcast' });
  }

  async start(): Promise<void> {
    const client = connectRedis(this.url, 'broadcast', this.metrics, this.log);
    this.client = client;
    client.on('message', (_channel: string, message: string) => {
      const items = readBrokerPayload(message, this.metrics, this.log);
      if (items.length > 0) this.handler(items);
    });
    // Never block start-up on a dead Redis: the SUBSCRIBE waits in ioredis's offline queue and is
    // remade after every reconnect (autoResubscribe).
    client.connect().catch(() => undefined);
    client.subscribe(this.channel).catch((err: unknown) => this.log.warn({ err: String(err) }, 'redis subscribe failed'));
  }

  async shutdown(): Promise<void> {
    this.client?.disconnect();
  }
}
