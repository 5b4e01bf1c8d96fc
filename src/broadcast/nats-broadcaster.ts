import type { NatsConnection, Subscription } from 'nats';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { connectNats } from '../broker/nats-connection.js';
import { readBrokerPayload } from '../broker/payload.js';
import type { Broadcaster, FanoutHandler } from './broadcaster.js';

/** Subscribes to the broadcast subject (`__anycable__`) on NATS. */
export class NatsBroadcaster implements Broadcaster {
  private connection: NatsConnection | null = null;
  private subscription: Subscription | null = null;
  private readonly log: Logger;

  constructor(
    private readonly servers: readonly string[],
    private readonly subject: string,
    private readonly handler: FanoutHandler,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'nats_broadcast' });
  }

  async start(): Promise<void> {
    this.connection = await connectNats(this.servers, 'broadcast', this.metrics, this.log);
    const decoder = new TextDecoder();
    this.subscription = this.connection.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err) return;
        const items = readBrokerPayload(decoder.decode(msg.data), this.metrics, this.log);
        if (items.length > 0) this.handler(items);
      },
    });
  }

  async shutdown(): Promise<void> {
    this.subscription?.unsubscribe();
    await this.connection?.close().catch(() => undefined);
  }
}
