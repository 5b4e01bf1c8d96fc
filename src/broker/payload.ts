import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { parsePublicationsText, type Publication } from '../broadcast/message.js';

/**
 * Parses a message from Redis or NATS; an invalid one is counted and logged, and yields nothing.
 * `trusted`: it comes from our own pub/sub, so stream positions in it are kept.
 */
export function readBrokerPayload(text: string, metrics: Metrics, log: Logger, trusted = false): readonly Publication[] {
  const parsed = parsePublicationsText(text, trusted);
  if (parsed.ok) return parsed.items;
  metrics.counters.failed_broadcast_msg_total++;
  log.warn({ error: parsed.error }, 'invalid broadcast payload');
  return [];
}
