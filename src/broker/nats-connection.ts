import { connect, type NatsConnection } from 'nats';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';

/**
 * A NATS connection that waits for the server at start, reconnects forever, resubscribes by itself
 * (nats.js), and reports transitions in logs and metrics.
 */
export async function connectNats(servers: readonly string[], role: string, metrics: Metrics, logger: Logger): Promise<NatsConnection> {
  const log = logger.child({ component: 'nats', role });
  const connection = await connect({
    servers: [...servers],
    waitOnFirstConnect: true,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 5000,
  });
  let up = true;
  metrics.registerGauge('broker_connected', () => (up ? 1 : 0));
  log.info('connected to nats');
  void (async () => {
    for await (const status of connection.status()) {
      if (status.type === 'disconnect') {
        up = false;
        log.warn('nats connection lost, reconnecting');
      } else if (status.type === 'reconnect') {
        up = true;
        metrics.counters.broker_reconnects_total++;
        log.info('reconnected to nats');
      }
    }
  })();
  return connection;
}

/** NATS subjects are dot-separated tokens without spaces or wildcards: stream names are encoded. */
export function streamSubject(prefix: string, stream: string): string {
  return `${prefix}.${Buffer.from(stream, 'utf8').toString('base64url') || '_'}`;
}
