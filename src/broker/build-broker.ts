import type { Config } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Broker, BrokerOptions } from './broker.js';
import { MemoryBroker } from './memory-broker.js';
import { RedisBroker } from './redis-broker.js';
import { NatsBroker } from './nats-broker.js';
import { redisTarget } from './redis-endpoint.js';

/** The broker chosen with --broker, or null (no history, no session restore). */
export function buildBroker(config: Config, metrics: Metrics, logger: Logger): Broker | null {
  const opts: BrokerOptions = { historyLimit: config.historyLimit, historyTtlS: config.historyTtlS, sessionsTtlS: config.sessionsTtlS, presenceTtlS: config.presenceTtlS };
  switch (config.broker) {
    case 'memory':
      return new MemoryBroker(opts);
    case 'redis':
      return new RedisBroker(redisTarget(config), opts, metrics, logger);
    case 'nats':
      return new NatsBroker(config.natsServers, opts, metrics, logger);
    case 'none':
      return null;
  }
}

/** How long history requests hold live messages after sending history (see HistoryServerOptions). */
export function historyGraceMs(broker: Broker | null): number {
  return broker === null || broker.kind === 'memory' ? 0 : 100;
}
