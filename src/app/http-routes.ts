import { Registry } from 'prom-client';
import type { Config } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Publication } from '../broadcast/message.js';
import type { HttpRoute } from '../server/http-server.js';
import { healthRoute } from '../server/health.js';
import { RateLimitedLog } from '../logging/rate-limited.js';
import { broadcastPolicy, hasValidBearer, INVALID_CREDENTIALS, type KeyPolicy } from '../server/auth-guard.js';
import { httpBroadcastRoute } from '../broadcast/http-broadcaster.js';
import { tokenRoute } from '../auth/token-route.js';

/** What the node's HTTP routes read and call; the same for one thread and for a cluster's primary or workers. */
export interface NodeRouteDeps {
  readonly serving: () => boolean;
  /** A dependency that is down (health answers 503 naming it), or null. */
  readonly unavailable: () => string | null;
  /** Broadcasts in; false (or a promise of false) when pub/sub refused one. */
  readonly accept: (pubs: readonly Publication[]) => boolean | Promise<boolean>;
  /** The Prometheus text of the whole node, when --metrics_http is set. */
  readonly renderMetrics: (() => Promise<string>) | null;
  readonly users: ReadonlyMap<string, string> | null;
  /** Log the start-up warnings about these routes: once per node (not once per worker thread). */
  readonly logStartWarnings: boolean;
}

export interface NodeRoutes {
  /** Served on the main port and on the API listener. */
  readonly shared: readonly HttpRoute[];
  /** Only on the API listener (a keyless broadcast endpoint stays off the public main port, as in anycable-go). */
  readonly apiOnly: readonly HttpRoute[];
  /** The route of a separate --metrics_port, or null. */
  readonly metricsPort: HttpRoute | null;
}

/** True when the HTTP API is served on the main port only (--http_broadcast_port equal to --port). */
export function sharesBroadcastPort(config: Config): boolean {
  return config.httpBroadcastPort !== 0 && config.httpBroadcastPort === config.port;
}

/** Prometheus scrapes: on the main port they need the API key (the 401 is logged saying so); --metrics_port is open. */
function metricsRoute(path: string, keys: KeyPolicy, render: () => Promise<string>, logger: Logger): HttpRoute {
  const quiet = new RateLimitedLog(logger.child({ component: 'metrics_http' }));
  return {
    method: 'get',
    pattern: path,
    handle: async (reply, req) => {
      if (!hasValidBearer(req, keys)) {
        quiet.warn('refused', { path, remote: req.remoteAddress },
          'metrics refused (401): the main port needs Authorization: Bearer <API key> (--api_key, or derived from --secret); or scrape --metrics_port (no key, internal networks only)');
        return reply.json('401 Unauthorized', INVALID_CREDENTIALS);
      }
      const body = await render();
      reply.send('200 OK', body, { 'Content-Type': Registry.PROMETHEUS_CONTENT_TYPE });
    },
  };
}

/** Health, broadcast, token and metrics routes, sorted by where they are served. */
export function nodeRoutes(config: Config, deps: NodeRouteDeps, metrics: Metrics, logger: Logger): NodeRoutes {
  const shared: HttpRoute[] = [healthRoute(config.healthPath, deps.serving, deps.unavailable)];
  const apiOnly: HttpRoute[] = [];
  if (config.broadcastAdapters.includes('http')) {
    const { policy: keys, warning } = broadcastPolicy(config);
    if (warning && deps.logStartWarnings) logger.warn(warning);
    const route = httpBroadcastRoute({ path: config.httpBroadcastPath, keys, maxBody: config.httpBroadcastMaxBody }, deps.accept, metrics, logger);
    if (config.broadcastKey || sharesBroadcastPort(config)) shared.push(route);
    else apiOnly.push(route);
  }
  if (config.jwtSecrets.length > 0 && config.apiKey) {
    shared.push(tokenRoute({ apiKey: config.apiKey, signingSecret: config.jwtSecrets[0] ?? '', defaultTtlS: config.tokenTtlS, users: deps.users }, metrics, logger));
  }
  let metricsPort: HttpRoute | null = null;
  if (deps.renderMetrics && config.metricsPort === 0) {
    // No API key at all (--noauth without a secret): nothing to ask for, the endpoint stays open as before.
    shared.push(metricsRoute(config.metricsHttp, config.apiKey ? [config.apiKey] : 'open', deps.renderMetrics, logger));
  } else if (deps.renderMetrics) {
    // A separate metrics port is an operator network: no key, as anycable-go.
    metricsPort = metricsRoute(config.metricsHttp, 'open', deps.renderMetrics, logger);
  }
  return { shared, apiOnly, metricsPort };
}
