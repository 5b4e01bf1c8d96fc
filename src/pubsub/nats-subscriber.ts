import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { NatsLink, streamSubject } from '../broker/nats-connection.js';
import { encodePublication, type Publication } from '../broadcast/message.js';
import { readBrokerPayload } from '../broker/payload.js';
import type { Subscriber } from './subscriber.js';

const STREAM_PREFIX = 'cablecat.stream';
const INTERNAL_SUBJECT = 'cablecat.internal';

/** NATS pub/sub between nodes: one subject per stream a node follows, one for remote commands. */
export class NatsSubscriber implements Subscriber {
  private readonly log: Logger;
  private readonly link: NatsLink;
  private deliver: (pub: Publication) => void = () => undefined;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();
  private readonly onMessage = (data: Uint8Array): void => {
    for (const pub of readBrokerPayload(this.decoder.decode(data), this.metrics, this.log, true)) this.deliver(pub);
  };

  constructor(servers: readonly string[], private readonly metrics: Metrics, logger: Logger) {
    this.log = logger.child({ component: 'nats_pubsub' });
    this.link = new NatsLink(servers, 'pubsub', metrics, this.log);
  }

  async start(deliver: (pub: Publication) => void): Promise<void> {
    this.deliver = deliver;
    this.link.subscribe(INTERNAL_SUBJECT, this.onMessage);
    this.link.start();
  }

  publish(pub: Publication): boolean {
    const subject = pub.kind === 'broadcast' ? streamSubject(STREAM_PREFIX, pub.stream) : INTERNAL_SUBJECT;
    // nats.js buffers while reconnecting; before the first connect NatsLink holds it.
    if (!this.link.publish(subject, this.encoder.encode(encodePublication(pub)))) {
      this.metrics.counters.failed_broadcast_msg_total++;
      this.log.warn('pub/sub publish refused: nats buffers are full');
      return false;
    }
    return true;
  }

  subscribeStream(stream: string): void {
    this.link.subscribe(streamSubject(STREAM_PREFIX, stream), this.onMessage);
  }

  unsubscribeStream(stream: string): void {
    this.link.unsubscribe(streamSubject(STREAM_PREFIX, stream));
  }

  async shutdown(): Promise<void> {
    await this.link.close();
  }
}
