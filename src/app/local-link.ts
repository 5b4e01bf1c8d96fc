import type { Config } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Publication } from '../broadcast/message.js';
import type { Broker } from '../broker/broker.js';
import type { PublicationSink } from '../broadcast/pipeline.js';
import { createPrometheusRegistry } from '../metrics/prometheus.js';
import { Semaphore } from '../rpc/semaphore.js';
import { LocalGate } from '../node/connection-gate.js';
import type { NodeLink } from './node-link.js';
import { NodeCore } from './node-core.js';

/**
 * The link of a server that is the whole node in one thread: what a worker would ask its primary for
 * (broker, pipeline, pub/sub follows, RPC slots, --max_conn, metrics) is right here.
 */
export class LocalLink implements NodeLink {
  readonly core: NodeCore;
  readonly broker: Broker | null;
  readonly publications: PublicationSink;
  readonly rpcSlots: Semaphore;
  readonly gate: LocalGate;
  private deliver: (pub: Publication) => void = () => {};
  private readonly render: () => Promise<string>;

  constructor(config: Config, metrics: Metrics, logger: Logger) {
    this.core = new NodeCore(config, metrics, logger, (pub) => this.deliver(pub));
    this.broker = this.core.broker;
    this.publications = this.core.pipeline;
    this.rpcSlots = new Semaphore(config.rpcConcurrency);
    this.gate = new LocalGate(config.maxConn);
    const registry = config.metricsHttp ? createPrometheusRegistry(metrics, config.metricsPrefix, config.metricsTags) : null;
    this.render = async () => (registry ? registry.metrics() : '');
  }

  streamAdded(stream: string): void {
    this.core.pubsub?.subscribeStream(stream);
  }

  streamRemoved(stream: string): void {
    this.core.pubsub?.unsubscribeStream(stream);
  }

  onDeliver(deliver: (pub: Publication) => void): void {
    this.deliver = deliver;
  }

  renderMetrics(): Promise<string> {
    return this.render();
  }

  unavailable(): string | null {
    return this.core.unavailable();
  }
}
