import type { Metrics } from '../metrics/metrics.js';
import type { Subscriber } from '../pubsub/subscriber.js';
import type { BroadcastSequencer } from '../reliable/broadcast-sequencer.js';
import type { Publication } from './message.js';

/** Where publications go in: the pipeline itself, or (in a worker thread) the node's primary thread. */
export interface PublicationSink {
  /** App broadcasts and remote commands: counted, positioned by the broker, routed; false when refused. */
  accept(pubs: readonly Publication[], fanout: boolean): boolean | Promise<boolean>;
  /** Whispers and presence events: routed only; false when refused. */
  route(pub: Publication, fanout: boolean): boolean;
}

/**
 * Where every publication enters, whatever the adapter. A fan-out source (Redis/NATS broadcast
 * channels, which every node hears) is delivered locally; a point source (HTTP, redisx, whispers)
 * goes through pub/sub so each node, this one included, gets it exactly once. With a broker, app
 * broadcasts first get their stream position here, once, on the node they entered.
 */
export class BroadcastPipeline implements PublicationSink {
  constructor(
    private readonly deliverLocally: (pub: Publication) => void,
    private readonly pubsub: Subscriber | null,
    private readonly metrics: Metrics,
    private readonly sequencer: BroadcastSequencer | null = null,
  ) {}

  /** The sequencer's emit callbacks, made once rather than a closure per publication. */
  private readonly routeFanout = (pub: Publication): boolean => this.route(pub, true);
  private readonly routePoint = (pub: Publication): boolean => this.route(pub, false);

  /** Counts and routes; false when pub/sub refused any of them (already counted as failed there). */
  accept(pubs: readonly Publication[], fanout: boolean): boolean {
    let all = true;
    for (const pub of pubs) {
      if (pub.kind === 'broadcast') this.metrics.counters.broadcast_msg_total++;
      else this.metrics.counters.remote_commands_total++;
      if (this.sequencer !== null) {
        // The sequencer emits at once unless the broker is slow; a refusal seen later is only counted.
        // Remote commands go through it too, so a disconnect never overtakes an earlier broadcast.
        if (!this.sequencer.accept(pub, fanout ? this.routeFanout : this.routePoint)) all = false;
      } else if (!this.route(pub, fanout)) {
        all = false;
      }
    }
    return all;
  }

  /** Routes without counting or storing (whispers come from clients and are transient); false when refused. */
  route(pub: Publication, fanout: boolean): boolean {
    if (fanout || this.pubsub === null) {
      this.deliverLocally(pub);
      return true;
    }
    return this.pubsub.publish(pub);
  }
}
