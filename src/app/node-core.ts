import type { Config } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Publication } from '../broadcast/message.js';
import { BroadcastPipeline } from '../broadcast/pipeline.js';
import type { Broadcaster, FanoutHandler } from '../broadcast/broadcaster.js';
import { RedisBroadcaster } from '../broadcast/redis-broadcaster.js';
import { NatsBroadcaster } from '../broadcast/nats-broadcaster.js';
import { RedisxBroadcaster } from '../broadcast/redisx-broadcaster.js';
import type { Broker } from '../broker/broker.js';
import { buildBroker } from '../broker/build-broker.js';
import { redisTarget } from '../broker/redis-endpoint.js';
import type { Subscriber } from '../pubsub/subscriber.js';
import { RedisSubscriber } from '../pubsub/redis-subscriber.js';
import { NatsSubscriber } from '../pubsub/nats-subscriber.js';
import { BroadcastSequencer } from '../reliable/broadcast-sequencer.js';

function buildSubscriber(config: Config, metrics: Metrics, logger: Logger): Subscriber | null {
  if (config.pubsub === 'redis') return new RedisSubscriber(redisTarget(config), metrics, logger);
  if (config.pubsub === 'nats') return new NatsSubscriber(config.natsServers, metrics, logger);
  return null;
}

/**
 * What exists once per node, however many threads serve its clients: the broker and the positions
 * it gives, pub/sub between nodes, and the broadcast adapters. Publications leave it through
 * `deliverLocally` (the node's clients: one thread's node, or every worker).
 */
export class NodeCore {
  readonly broker: Broker | null;
  readonly sequencer: BroadcastSequencer | null;
  readonly pubsub: Subscriber | null;
  readonly pipeline: BroadcastPipeline;
  private readonly broadcasters: Broadcaster[] = [];

  constructor(private readonly config: Config, metrics: Metrics, private readonly logger: Logger, private readonly deliverLocally: (pub: Publication) => void) {
    this.pubsub = buildSubscriber(config, metrics, logger);
    this.broker = buildBroker(config, metrics, logger);
    this.sequencer = this.broker ? new BroadcastSequencer(this.broker.history, metrics, logger) : null;
    this.pipeline = new BroadcastPipeline(deliverLocally, this.pubsub, metrics, this.sequencer);
    const fanout: FanoutHandler = (pubs) => this.pipeline.accept(pubs, true);
    const adapters = config.broadcastAdapters;
    if (adapters.includes('redis')) this.broadcasters.push(new RedisBroadcaster(redisTarget(config), config.redisChannel, fanout, metrics, logger));
    if (adapters.includes('redisx')) {
      this.broadcasters.push(new RedisxBroadcaster({ url: redisTarget(config), stream: config.redisxStream, group: config.redisxGroup },
        (pubs) => this.pipeline.accept(pubs, false), metrics, logger));
    }
    if (adapters.includes('nats')) this.broadcasters.push(new NatsBroadcaster(config.natsServers, config.natsChannel, fanout, metrics, logger));
  }

  /** 'Broker unavailable' while the broker is down (health answers 503), else null. */
  unavailable(): string | null {
    return this.broker && !this.broker.isReady() ? 'Broker unavailable' : null;
  }

  async startBroker(): Promise<void> {
    if (!this.broker) return;
    await this.broker.start();
    const c = this.config;
    this.logger.info({ broker: this.broker.kind, historyLimit: c.historyLimit, historyTtlS: c.historyTtlS, sessionsTtlS: c.sessionsTtlS }, 'broker enabled');
  }

  /** Pub/sub and the broadcast adapters: from here on publications arrive. */
  async startIngress(): Promise<void> {
    if (this.pubsub) await this.pubsub.start(this.deliverLocally);
    for (const b of this.broadcasters) await b.start();
  }

  /** Stops taking broadcasts; those already accepted still get their positions and go out (bounded by the deadline). */
  async stopIngress(deadline: number): Promise<void> {
    for (const b of this.broadcasters) await b.shutdown();
    // Bounded: with the broker down they would wait for it forever.
    if (this.sequencer) await Promise.race([this.sequencer.drain(), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
    if (this.pubsub) await this.pubsub.shutdown();
  }

  async closeBroker(): Promise<void> {
    await this.broker?.shutdown();
  }
}
