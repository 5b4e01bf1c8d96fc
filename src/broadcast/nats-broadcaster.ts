import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { NatsLink } from '../broker/nats-connection.js';
import { readBrokerPayload } from '../broker/payload.js';
import type { Broadcaster, FanoutHandler } from './broadcaster.js';

/** Subscribes to the broadcast subject (`__anycable__`) on NATS. */
export class NatsBroadcaster implements Broadcaster {
  private readonly link: NatsLink;
  private readonly log: Logger;

  constructor(servers: readonly string[], private readonly subject: string, private readonly handler: FanoutHandler, private readonly metrics: Metrics, logger: Logger) {
    this.log = logger.child({ component: 'nats_broadcast' });
    this.link = new NatsLink(servers, 'broadcast', metrics, this.log);
  }

  async start(): Promise<void> {
    const decoder = new TextDecoder();
    this.link.subscribe(this.subject, (data) => {
      const items = readBrokerPayload(decoder.decode(data), this.metrics, this.log);
      if (items.length > 0) this.handler(items);
    });
    this.link.start();
  }

  async shutdown(): Promise<void> {
    await this.link.close();
  }
}
