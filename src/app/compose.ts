import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import { Metrics } from '../metrics/metrics.js';
import { createPrometheusRegistry } from '../metrics/prometheus.js';
import { MetricsLogger } from '../metrics/metrics-logger.js';
import { loadUws, type Uws } from '../server/uws.js';
import { createApp, listen, registerRoutes, type HttpRoute } from '../server/http-server.js';
import { healthRoute } from '../server/health.js';
import { checkTlsFiles } from '../server/tls-files.js';
import { RateLimitedLog } from '../logging/rate-limited.js';
import { ApiListener } from '../server/api-listener.js';
import { WsEndpoint } from '../server/ws-endpoint.js';
import { broadcastPolicy, hasValidBearer, INVALID_CREDENTIALS, type KeyPolicy } from '../server/auth-guard.js';
import { Hub } from '../hub/hub.js';
import { Node } from '../node/node.js';
import { DisconnectQueue } from '../node/disconnect-queue.js';
import { NullController } from '../node/null-controller.js';
import type { Controller } from '../node/controller.js';
import { IdentifiedController, JwtIdentifier, PublicIdentifier, WsKeyIdentifier, type Identifier } from '../auth/identified-controller.js';
import { JwtVerifier } from '../auth/jwt.js';
import { tokenRoute } from '../auth/token-route.js';
import { loadUsersFile } from '../auth/users.js';
import { StreamsController } from '../streams/streams-controller.js';
import { RpcController } from '../rpc/rpc-controller.js';
import { GrpcTransport } from '../rpc/grpc-transport.js';
import { HttpTransport } from '../rpc/http-transport.js';
import type { RpcTransport } from '../rpc/transport.js';
import { BroadcastPipeline } from '../broadcast/pipeline.js';
import { buildBroker, historyGraceMs } from '../broker/build-broker.js';
import { PresenceService } from '../presence/presence-service.js';
import { BroadcastSequencer } from '../reliable/broadcast-sequencer.js';
import { CatchUp } from '../reliable/catch-up.js';
import { HistoryServer } from '../reliable/history-server.js';
import { SessionKeeper } from '../reliable/session-keeper.js';
import { httpBroadcastRoute } from '../broadcast/http-broadcaster.js';
import { RedisBroadcaster } from '../broadcast/redis-broadcaster.js';
import { NatsBroadcaster } from '../broadcast/nats-broadcaster.js';
import { RedisxBroadcaster } from '../broadcast/redisx-broadcaster.js';
import type { Broadcaster, FanoutHandler } from '../broadcast/broadcaster.js';
import type { Subscriber } from '../pubsub/subscriber.js';
import { RedisSubscriber } from '../pubsub/redis-subscriber.js';
import { redisTarget } from '../broker/redis-endpoint.js';
import { NatsSubscriber } from '../pubsub/nats-subscriber.js';
import { SseEndpoint } from '../sse/sse-endpoint.js';
import { publisherWithSse, SseTopics } from '../sse/sse-topics.js';

export interface Cablecat {
  readonly metrics: Metrics;
  readonly node: Node;
  /** Bound port (resolved when listening on port 0). */
  port: number;
  metricsPort: number;
  /** Bound port of the node:http API listener (0 when there is none). */
  apiPort: number;
  start(): Promise<void>;
  /** Graceful: refuse new connections, tell clients server_restart, flush Disconnect calls, stop. */
  shutdown(): Promise<void>;
}

function buildTransport(config: Config): RpcTransport {
  if (/^https?:\/\//.test(config.rpcHost)) {
    return new HttpTransport({ baseUrl: config.rpcHost, secret: config.httpRpcSecret, timeoutMs: config.httpRpcTimeoutMs });
  }
  return new GrpcTransport({ host: config.rpcHost, keepaliveIntervalS: config.rpcKeepaliveIntervalS });
}

function buildController(config: Config, metrics: Metrics, logger: Logger): Controller {
  const rpc: Controller = config.norpc
    ? new NullController()
    : new RpcController(buildTransport(config), {
      concurrency: config.rpcConcurrency,
      commandTimeoutMs: config.rpcCommandTimeoutMs,
      requestTimeoutMs: config.rpcRequestTimeoutMs,
    }, metrics, logger);
  const streams = new StreamsController(config, rpc, logger);
  const identifiers: Identifier[] = [];
  const verifier = new JwtVerifier(config.jwtSecrets);
  if (verifier.enabled) identifiers.push(new JwtIdentifier(verifier, config.enforceJwt));
  if (config.wsApiKey) identifiers.push(new WsKeyIdentifier());
  if (config.noauth) identifiers.push(new PublicIdentifier());
  return new IdentifiedController(identifiers, streams);
}

function buildSubscriber(config: Config, metrics: Metrics, logger: Logger): Subscriber | null {
  if (config.pubsub === 'redis') return new RedisSubscriber(redisTarget(config), metrics, logger);
  if (config.pubsub === 'nats') return new NatsSubscriber(config.natsServers, metrics, logger);
  return null;
}

/** Prometheus scrapes: on the main port they need the API key (the 401 is logged saying so); --metrics_port is open. */
function metricsRoute(path: string, keys: KeyPolicy, render: () => Promise<string>, contentType: string, logger: Logger): HttpRoute {
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
      reply.send('200 OK', body, { 'Content-Type': contentType });
    },
  };
}

export async function createCablecat(config: Config, logger: Logger, uws: Uws = loadUws()): Promise<Cablecat> {
  const metrics = new Metrics();
  checkTlsFiles(config.sslCert, config.sslKey);
  const app: TemplatedApp = createApp(uws, config);
  const controller = buildController(config, metrics, logger);
  const pubsub = buildSubscriber(config, metrics, logger);
  // SSE connections are a second kind of topic subscriber; without --sse nothing changes on the publish path.
  const sseTopics = config.sse ? new SseTopics() : null;
  const hub = new Hub(app, metrics, {
    onStreamAdded: (stream) => pubsub?.subscribeStream(stream),
    onStreamRemoved: (stream) => pubsub?.unsubscribeStream(stream),
  }, sseTopics);
  const disconnectQueue = new DisconnectQueue(controller, config.disconnectRate, metrics, logger.child({ component: 'disconnector' }));
  // The pipeline delivers through the node and the node publishes whispers through the pipeline;
  // the closure is only called once both exist.
  const broker = buildBroker(config, metrics, logger);
  const sequencer = broker ? new BroadcastSequencer(broker.history, metrics, logger) : null;
  const pipeline = new BroadcastPipeline((pub) => node.deliver(pub), pubsub, metrics, sequencer);
  const catchUp = new CatchUp(hub);
  const reliable = {
    history: new HistoryServer(broker, catchUp, { graceMs: historyGraceMs(broker) }, metrics, logger),
    // Clients come back with history requests at once; a second is plenty and bounds the wait of others.
    sessions: broker && config.sessionsTtlS > 0 ? new SessionKeeper(broker, catchUp, { restoreHoldMs: 1000, refreshMs: config.sessionsTtlS * 500 }, metrics, logger) : null,
  };
  // Presence lives in the broker's store; its events take the broadcast path, so every node hears them.
  const presence = new PresenceService(broker?.presence ?? null, { ttlS: config.presenceTtlS }, (pub) => pipeline.route(pub, false), metrics, logger);
  const node = new Node(
    {
      pingIntervalS: config.pingIntervalS, maxMessageSize: config.maxMessageSize, maxPendingBytes: config.wsMaxPendingSize,
      maxCommandQueueSize: config.maxCommandQueueSize, disconnectMode: config.disconnectMode, pongTimeoutS: config.pongTimeoutS,
    },
    { controller, hub, publisher: sseTopics ? publisherWithSse(app, sseTopics) : app, disconnectQueue, metrics, logger, publish: (pub) => pipeline.route(pub, false), reliable, catchUp, presence },
  );

  // Both transports authenticate a request the same way.
  const requestRules = {
    allowedOrigins: config.allowedOrigins,
    maxConn: config.maxConn,
    wsApiKey: config.wsApiKey,
    proxiedHeaders: config.headers,
    captureHeaders: !config.norpc,
    jwtParam: config.jwtParam,
    jwtEnabled: config.jwtSecrets.length > 0,
    secure: config.sslCert !== '',
  };
  const endpoint = new WsEndpoint({
    ...requestRules,
    paths: config.paths,
    maxMessageSize: config.maxMessageSize,
    maxPendingBytes: config.wsMaxPendingSize,
  }, node, logger);
  endpoint.register(app);
  const sse = sseTopics ? new SseEndpoint({ ...requestRules, path: config.ssePath }, node, sseTopics, app, metrics, logger) : null;
  sse?.register(app);

  let serving = true;
  // 503 while the broker is down: broadcasts can't be given positions, restores can't be served.
  const routes: HttpRoute[] = [healthRoute(config.healthPath, () => serving, () => (broker && !broker.isReady() ? 'Broker unavailable' : null))];
  // The API listener (node:http) serves the main port's routes, plus broadcasts without a key.
  const apiOnlyRoutes: HttpRoute[] = [];
  const sharedBroadcastPort = config.httpBroadcastPort !== 0 && config.httpBroadcastPort === config.port;
  if (config.broadcastAdapters.includes('http')) {
    const { policy: keys, warning } = broadcastPolicy(config);
    if (warning) logger.warn(warning);
    const route = httpBroadcastRoute({ path: config.httpBroadcastPath, keys, maxBody: config.httpBroadcastMaxBody },
      (pubs) => pipeline.accept(pubs, false), metrics, logger);
    // As anycable-go: an unauthenticated broadcast endpoint stays off the public main port.
    if (config.broadcastKey || sharedBroadcastPort) routes.push(route);
    else apiOnlyRoutes.push(route);
  }
  const users = config.usersFile ? loadUsersFile(config.usersFile) : null;
  if (config.jwtSecrets.length > 0 && config.apiKey) {
    routes.push(tokenRoute({ apiKey: config.apiKey, signingSecret: config.jwtSecrets[0] ?? '', defaultTtlS: config.tokenTtlS, users }, metrics, logger));
  }
  const registry = config.metricsHttp ? createPrometheusRegistry(metrics, config.metricsPrefix, config.metricsTags) : null;
  const renderMetrics = async (): Promise<string> => (registry ? registry.metrics() : '');
  let metricsListener: ApiListener | null = null;
  if (registry && config.metricsPort === 0) {
    // No API key at all (--noauth without a secret): nothing to ask for, the endpoint stays open as before.
    routes.push(metricsRoute(config.metricsHttp, config.apiKey ? [config.apiKey] : 'open', renderMetrics, registry.contentType, logger));
  } else if (registry) {
    // A separate metrics port is an operator network: no key, as anycable-go. node:http answers every scraper.
    metricsListener = new ApiListener([metricsRoute(config.metricsHttp, 'open', renderMetrics, registry.contentType, logger)], metrics, logger, 'metrics_http', '--metrics_port');
  }
  registerRoutes(app, routes, logger.child({ component: 'http' }));
  const apiListener = config.broadcastAdapters.includes('http') && !sharedBroadcastPort
    ? new ApiListener([...routes, ...apiOnlyRoutes], metrics, logger)
    : null;

  const broadcasters: Broadcaster[] = [];
  const fanout: FanoutHandler = (pubs) => pipeline.accept(pubs, true);
  if (config.broadcastAdapters.includes('redis')) broadcasters.push(new RedisBroadcaster(redisTarget(config), config.redisChannel, fanout, metrics, logger));
  if (config.broadcastAdapters.includes('redisx')) {
    broadcasters.push(new RedisxBroadcaster({ url: redisTarget(config), stream: config.redisxStream, group: config.redisxGroup },
      (pubs) => pipeline.accept(pubs, false), metrics, logger));
  }
  if (config.broadcastAdapters.includes('nats')) broadcasters.push(new NatsBroadcaster(config.natsServers, config.natsChannel, fanout, metrics, logger));
  const metricsLogger = config.metricsLog ? new MetricsLogger(metrics, logger.child({ component: 'metrics' }), config.metricsRotateIntervalS * 1000) : null;

  const listenSockets: us_listen_socket[] = [];
  const cablecat: Cablecat = {
    metrics,
    node,
    port: 0,
    metricsPort: 0,
    apiPort: 0,
    async start() {
      if (broker) {
        await broker.start();
        reliable.sessions?.start();
        logger.info({ broker: broker.kind, historyLimit: config.historyLimit, historyTtlS: config.historyTtlS, sessionsTtlS: config.sessionsTtlS }, 'broker enabled');
      }
      if (pubsub) await pubsub.start((pub) => node.deliver(pub));
      for (const b of broadcasters) await b.start();
      const main = await listen(uws, app, config.host, config.port);
      listenSockets.push(main.socket);
      cablecat.port = main.port;
      if (apiListener) {
        try {
          cablecat.apiPort = await apiListener.listen(config.host, config.httpBroadcastPort);
        } catch (err) {
          // A taken API port fails the start: leave no main socket behind.
          for (const s of listenSockets.splice(0)) uws.us_listen_socket_close(s);
          throw err;
        }
      }
      if (sharedBroadcastPort && config.broadcastAdapters.includes('http')) {
        logger.warn({ port: config.port }, 'HTTP broadcasts on the main port only: uWS cannot parse the anycable gem\'s absolute-form requests, point its http_broadcast_url at another adapter or set a separate --http_broadcast_port');
      }
      if (metricsListener) cablecat.metricsPort = await metricsListener.listen(config.metricsHost || config.host, config.metricsPort);
      node.start();
      presence.start();
      disconnectQueue.start();
      metricsLogger?.start();
    },
    async shutdown() {
      const deadline = Date.now() + config.shutdownTimeoutMs;
      serving = false;
      endpoint.stopAccepting();
      sse?.stopAccepting();
      // Calls in flight finish first, so their sessions' Disconnect calls are queued before the flush.
      presence.stop();
      await node.disconnectAll(Math.max(0, deadline - Date.now()));
      await disconnectQueue.flush(Math.max(0, deadline - Date.now()));
      for (const b of broadcasters) await b.shutdown();
      // Broadcasts already accepted still get their positions and go out before the broker closes.
      // Bounded: with the broker down they would wait for it forever.
      if (sequencer) await Promise.race([sequencer.drain(), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
      if (pubsub) await pubsub.shutdown();
      reliable.sessions?.stop();
      await broker?.shutdown();
      await controller.shutdown();
      metricsLogger?.stop();
      for (const s of listenSockets.splice(0)) uws.us_listen_socket_close(s);
      await apiListener?.close();
      await metricsListener?.close();
    },
  };
  return cablecat;
}
