import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { HttpRoute } from '../server/http-server.js';
import { hasValidBearer, INVALID_CREDENTIALS, type KeyPolicy } from '../server/auth-guard.js';
import { parsePublicationsText, type Publication } from './message.js';

export interface HttpBroadcasterOptions {
  readonly path: string;
  /** Accepted bearer keys (broadcast key, API key), or 'open' (--public / --broadcast_key=none). */
  readonly keys: KeyPolicy;
  readonly maxBody: number;
}

/**
 * POST /_broadcast: 201 accepted, 401 bad key, 413 too large, 422 unparseable or invalid
 * (anycable-go answers 201 to garbage; we say what is wrong), 503 refused by pub/sub.
 */
export function httpBroadcastRoute(
  opts: HttpBroadcasterOptions,
  /** False when pub/sub refused a publication (broker down and its hold full); a worker thread awaits its node's answer. */
  accept: (pubs: readonly Publication[]) => boolean | Promise<boolean>,
  metrics: Metrics,
  logger: Logger,
): HttpRoute {
  const log = logger.child({ component: 'http_broadcast' });
  return {
    method: 'post',
    pattern: opts.path,
    handle: async (reply, req) => {
      if (!hasValidBearer(req, opts.keys)) {
        log.info('broadcast refused: invalid credentials');
        reply.json('401 Unauthorized', INVALID_CREDENTIALS, true);
        return;
      }
      const body = await req.readBody(opts.maxBody);
      if (!body.ok) {
        if (body.reason === 'too_large') {
          metrics.counters.failed_broadcast_msg_total++;
          log.info({ limit: opts.maxBody }, 'broadcast refused: body too large');
          reply.json('413 Payload Too Large', { error: 'payload_too_large', limit: opts.maxBody }, true);
        } else {
          log.debug('broadcast request aborted by the client');
        }
        return;
      }
      const parsed = parsePublicationsText(body.body.toString('utf8'));
      if (!parsed.ok) {
        metrics.counters.failed_broadcast_msg_total++;
        log.info({ error: parsed.error }, 'broadcast refused: invalid payload');
        reply.json('422 Unprocessable Entity', { error: 'invalid_payload', detail: parsed.error });
        return;
      }
      if (!(await accept(parsed.items))) {
        // Counted in failed_broadcast_msg_total by pub/sub; the sender must know it was not delivered.
        log.warn({ count: parsed.items.length }, 'broadcast dropped: pub/sub refused it');
        reply.json('503 Service Unavailable', { error: 'pubsub_unavailable', detail: 'the pub/sub broker is down and its hold is full; retry later' });
        return;
      }
      reply.send('201 Created');
    },
  };
}
