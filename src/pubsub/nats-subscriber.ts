import type { NatsConnection, Subscription } from 'nats';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { connectNats, streamSubject } from '../broker/nats-connection.js';
import { encodePublication, type Publication } from '../broadcast/message.js';
import { readBrokerPayload } from '../broker/payload.js';
import type { Subscriber } from './subscriber.js';

const STREAM_PREFIX = 'cablecat.stream';
const INTERNAL_SUBJECT = 'cablecat.internal';

/** NATS pub/sub between nodes: one subject per stream a node follows, one for remote commands. */
export class NatsSubscriber implements Subscriber {
  private readonly log: Logger;
  private connection: NatsConnection | null = null;
  private deliver: (pub: Publication) => void = () => undefined;
  private readonly streams = new Map<string, Subscription>();
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();

  constructor(private readonly servers: readonly string[], private readonly metrics: Metrics, logger: Logger) {
    this.log = logger.child({ component: 'nats_pubsub' });
  }

  async start(deliver: (pub: Publication) => void): Promise<void> {
    this.deliver = deliver;
    this.connection = await connectNats(this.servers, 'pubsub', this.metrics, this.log);
    this.listen(INTERNAL_SUBJECT);
  }

  private listen(subject: string): Subscription | null {
    return this.connection?.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        for (const pub of readBrokerPayload(this.decoder.decode(msg.data), this.metrics, this.log)) this.deliver(pub);
      },
    }) ?? null;
  }

  publish(pub: Publication): void {
    const subject = pub.kind === 'broadcast' ? streamSubject(STREAM_PREFIX, pub.stream) : INTERNAL_SUBJECT;
    try {
      // nats.js buffers while reconnecting, so an accepted broadcast survives a short outage.
      this.connection?.publish(subject, this.encoder.encode(encodePublication(pub)));
    } catch (err) {
      this.metrics.counters.failed_broadcast_msg_total++;
      this.log.warn({ err: String(err) }, 'pub/sub publish failed');
    }
  }

  subscribeStream(stream: string): void {
    if (this.streams.has(stream)) return;
    const sub = this.listen(streamSubject(STREAM_PREFIX, stream));
    if (sub) this.streams.set(stream, sub);
  }

  unsubscribeStream(stream: string): void {
    this.streams.get(stream)?.unsubscribe();
    this.streams.delete(stream);
  }

  async shutdown(): Promise<void> {
    await this.connection?.drain().catch(() => undefined);
  }
}
