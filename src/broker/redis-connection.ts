import { Redis } from 'ioredis';
import type { Logger } from '../logging/logger.js';
import { RateLimitedLog } from '../logging/rate-limited.js';
import type { Metrics } from '../metrics/metrics.js';
import { ioredisArgs, type RedisTarget } from './redis-endpoint.js';

/**
 * A Redis connection that reconnects forever, resubscribes its channels by itself (ioredis
 * autoResubscribe), logs each transition, and reports itself in metrics: anycable-go users lost
 * broadcasts silently after Redis trouble.
 */
export function connectRedis(target: RedisTarget, role: string, metrics: Metrics, logger: Logger): Redis {
  const log = logger.child({ role });
  const quiet = new RateLimitedLog(log);
  const { url, options } = ioredisArgs(target);
  const base = {
    ...options,
    lazyConnect: true,
    autoResubscribe: true,
    maxRetriesPerRequest: null,
    retryStrategy: (times: number) => Math.min(100 * times, 2000),
  };
  const client = url === null ? new Redis(base) : new Redis(url, base);
  let up = false;
  let everConnected = false;
  metrics.registerGauge('broker_connected', () => (up ? 1 : 0));
  client.on('ready', () => {
    up = true;
    if (everConnected) {
      metrics.counters.broker_reconnects_total++;
      log.info('reconnected to redis');
    } else {
      log.info('connected to redis');
    }
    everConnected = true;
  });
  client.on('close', () => {
    if (up) log.warn('redis connection lost, reconnecting');
    up = false;
  });
  client.on('error', (err: Error) => quiet.warn('error', { err: err.message }, 'redis error'));
  return client;
}
