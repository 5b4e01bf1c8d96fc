import type { Metrics } from '../metrics/metrics.js';
import type { Subscriber } from '../pubsub/subscriber.js';
import type { BroadcastSequencer } from '../reliable/broadcast-sequencer.js';
import type { Publication } from './message.js';

/**
 * Where every publication enters, whatever the adapter. A fan-out source (Redis/NATS broadcast
 * channels, which every node hears) is delivered locally; a point source (HTTP, redisx, whispers)
 * goes through pub/sub so each node, this one included, gets it exactly once. With a broker, app
 * broadcasts first get their stream position here, once, on the node they entered.
 */
export class BroadcastPipeline {
  constructor(
    private readonly deliverLocally: (pub: Publication) => void,
    private readonly pubsub: Subscriber | null,
    private readonly metrics: Metrics,
    private readonly sequencer: BroadcastSequencer | null = null,
  ) {}

  accept(pubs: readonly Publication[], fanout: boolean): void {
    for (const pub of pubs) {
      if (pub.kind === 'broadcast') this.metrics.counters.broadcast_msg_total++;
      else this.metrics.counters.remote_commands_total++;
      if (pub.kind === 'broadcast' && this.sequencer !== null) this.sequencer.accept(pub, (positioned) => this.route(positioned, fanout));
      else this.route(pub, fanout);
    }
  }

  /** Routes without counting or storing: whispers come from clients and are transient. */
  route(pub: Publication, fanout: boolean): void {
    if (fanout || this.pubsub === null) this.deliverLocally(pub);
    else this.pubsub.publish(pub);
  }
}
