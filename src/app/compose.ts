import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import { Metrics } from '../metrics/metrics.js';
import { MetricsLogger } from '../metrics/metrics-logger.js';
import { loadUws, type Uws } from '../server/uws.js';
import { closeApp, createApp, listen, registerRoutes } from '../server/http-server.js';
import { checkTlsFiles } from '../server/tls-files.js';
import { ApiListener } from '../server/api-listener.js';
import { WsEndpoint } from '../server/ws-endpoint.js';
import { Hub } from '../hub/hub.js';
import { Node } from '../node/node.js';
import { DisconnectQueue } from '../node/disconnect-queue.js';
import { NullController } from '../node/null-controller.js';
import type { Controller } from '../node/controller.js';
import { IdentifiedController, JwtIdentifier, PublicIdentifier, WsKeyIdentifier, type Identifier } from '../auth/identified-controller.js';
import { JwtVerifier } from '../auth/jwt.js';
import { loadUsersFile } from '../auth/users.js';
import { StreamsController } from '../streams/streams-controller.js';
import { RpcController } from '../rpc/rpc-controller.js';
import { GrpcTransport } from '../rpc/grpc-transport.js';
import { HttpTransport } from '../rpc/http-transport.js';
import type { RpcTransport } from '../rpc/transport.js';
import type { CallSlots } from '../rpc/semaphore.js';
import type { Publication } from '../broadcast/message.js';
import { historyGraceMs } from '../broker/build-broker.js';
import { PresenceService } from '../presence/presence-service.js';
import { CatchUp } from '../reliable/catch-up.js';
import { HistoryServer } from '../reliable/history-server.js';
import { SessionKeeper } from '../reliable/session-keeper.js';
import { SseEndpoint } from '../sse/sse-endpoint.js';
import { SseTopics } from '../sse/sse-topics.js';
import type { NodeLink } from './node-link.js';
import type { IdentifierEvents } from '../node/session-registry.js';
import { LocalLink } from './local-link.js';
import { nodeRoutes, sharesBroadcastPort } from './http-routes.js';

export interface Cablecat {
  readonly metrics: Metrics;
  readonly node: Node;
  /** Bound port (resolved when listening on port 0). */
  port: number;
  metricsPort: number;
  /** Bound port of the node:http API listener (0 when there is none). */
  apiPort: number;
  start(): Promise<void>;
  /** Graceful: refuse new connections, tell clients server_restart, flush Disconnect calls, stop (by `deadline`, ms since the epoch). */
  shutdown(deadline?: number): Promise<void>;
  /** Closes every uWS socket at once (a worker thread must, before it ends). */
  closeNow(): void;
}

function buildTransport(config: Config): RpcTransport {
  if (/^https?:\/\//.test(config.rpcHost)) {
    return new HttpTransport({ baseUrl: config.rpcHost, secret: config.httpRpcSecret, timeoutMs: config.httpRpcTimeoutMs });
  }
  return new GrpcTransport({ host: config.rpcHost, keepaliveIntervalS: config.rpcKeepaliveIntervalS });
}

function buildController(config: Config, metrics: Metrics, logger: Logger, slots: CallSlots): Controller {
  const rpc: Controller = config.norpc
    ? new NullController()
    : new RpcController(buildTransport(config), {
      concurrency: config.rpcConcurrency,
      commandTimeoutMs: config.rpcCommandTimeoutMs,
      requestTimeoutMs: config.rpcRequestTimeoutMs,
      slots,
    }, metrics, logger);
  const streams = new StreamsController(config, rpc, logger);
  const identifiers: Identifier[] = [];
  const verifier = new JwtVerifier(config.jwtSecrets);
  if (verifier.enabled) identifiers.push(new JwtIdentifier(verifier, config.enforceJwt));
  if (config.wsApiKey) identifiers.push(new WsKeyIdentifier());
  if (config.noauth) identifiers.push(new PublicIdentifier());
  return new IdentifiedController(identifiers, streams);
}

/**
 * One server: with `worker` null it is the whole node in this thread; with a worker link it is one
 * worker thread of a node (src/cluster), which takes what exists once per node from the primary.
 */
export async function createCablecat(config: Config, logger: Logger, uws: Uws = loadUws(), worker: (NodeLink & IdentifierEvents) | null = null): Promise<Cablecat> {
  const metrics = new Metrics();
  checkTlsFiles(config.sslCert, config.sslKey);
  const app: TemplatedApp = createApp(uws, config);
  // The node's parts: here when this thread is the whole node.
  const local = worker ? null : new LocalLink(config, metrics, logger);
  const link: NodeLink = worker ?? (local as LocalLink);
  const controller = buildController(config, metrics, logger, link.rpcSlots);
  const broker = link.broker;
  // SSE connections are a second kind of topic subscriber; without --sse nothing changes on the publish path.
  const sseTopics = config.sse ? new SseTopics() : null;
  const hub = new Hub(app, metrics, {
    onStreamAdded: (stream) => link.streamAdded(stream),
    onStreamRemoved: (stream) => link.streamRemoved(stream),
  }, sseTopics);
  const disconnectQueue = new DisconnectQueue(controller, config.disconnectRate, metrics, logger.child({ component: 'disconnector' }));
  const catchUp = new CatchUp(hub);
  const reliable = {
    history: new HistoryServer(broker, catchUp, { graceMs: historyGraceMs(broker) }, metrics, logger),
    // Clients come back with history requests at once; a second is plenty and bounds the wait of others.
    sessions: broker && config.sessionsTtlS > 0 ? new SessionKeeper(broker, catchUp, { restoreHoldMs: 1000, refreshMs: config.sessionsTtlS * 500 }, metrics, logger) : null,
  };
  // Presence lives in the broker's store; its events take the broadcast path, so every node hears them.
  const publish = (pub: Publication): boolean => link.publications.route(pub, false);
  const presence = new PresenceService(broker?.presence ?? null, { ttlS: config.presenceTtlS }, publish, metrics, logger);
  const node = new Node(
    {
      pingIntervalS: config.pingIntervalS, maxMessageSize: config.maxMessageSize, maxPendingBytes: config.wsMaxPendingSize,
      maxCommandQueueSize: config.maxCommandQueueSize, disconnectMode: config.disconnectMode, pongTimeoutS: config.pongTimeoutS,
    },
    {
      controller, hub, disconnectQueue, metrics, logger, publish, reliable, catchUp, presence,
      gate: link.gate, identifierEvents: worker,
    },
  );

  // Both transports authenticate a request the same way.
  const requestRules = {
    allowedOrigins: config.allowedOrigins,
    maxConn: config.maxConn,
    gate: link.gate,
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
  const routes = nodeRoutes(config, {
    serving: () => serving,
    // 503 while the broker is down: broadcasts can't be given positions, restores can't be served.
    unavailable: () => link.unavailable(),
    accept: (pubs) => link.publications.accept(pubs, false),
    renderMetrics: config.metricsHttp ? () => link.renderMetrics() : null,
    users: config.usersFile ? loadUsersFile(config.usersFile) : null,
    logStartWarnings: local !== null,
  }, metrics, logger);
  registerRoutes(app, routes.shared, logger.child({ component: 'http' }));
  // The node's own listeners exist where the node is whole; a worker's primary has them.
  const apiListener = local && config.broadcastAdapters.includes('http') && !sharesBroadcastPort(config)
    ? new ApiListener([...routes.shared, ...routes.apiOnly], metrics, logger)
    : null;
  // A separate metrics port is an operator network: no key, as anycable-go. node:http answers every scraper.
  const metricsListener = local && routes.metricsPort ? new ApiListener([routes.metricsPort], metrics, logger, 'metrics_http', '--metrics_port') : null;
  const metricsLogger = local && config.metricsLog ? new MetricsLogger(metrics, logger.child({ component: 'metrics' }), config.metricsRotateIntervalS * 1000) : null;

  const listenSockets: us_listen_socket[] = [];
  const cablecat: Cablecat = {
    metrics,
    node,
    port: 0,
    metricsPort: 0,
    apiPort: 0,
    async start() {
      await local?.core.startBroker();
      reliable.sessions?.start();
      link.onDeliver((pub) => node.deliver(pub));
      await local?.core.startIngress();
      // A worker shares the port with its siblings (SO_REUSEPORT); the primary checked it was ours alone.
      const main = await listen(uws, app, config.host, config.port, worker !== null);
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
      if (local && sharesBroadcastPort(config) && config.broadcastAdapters.includes('http')) {
        logger.warn({ port: config.port }, 'HTTP broadcasts on the main port only: uWS cannot parse the anycable gem\'s absolute-form requests, point its http_broadcast_url at another adapter or set a separate --http_broadcast_port');
      }
      if (metricsListener) cablecat.metricsPort = await metricsListener.listen(config.metricsHost || config.host, config.metricsPort);
      node.start();
      presence.start();
      disconnectQueue.start();
      metricsLogger?.start();
    },
    async shutdown(deadline = Date.now() + config.shutdownTimeoutMs) {
      serving = false;
      endpoint.stopAccepting();
      sse?.stopAccepting();
      // Calls in flight finish first, so their sessions' Disconnect calls are queued before the flush.
      presence.stop();
      await node.disconnectAll(Math.max(0, deadline - Date.now()));
      await disconnectQueue.flush(Math.max(0, deadline - Date.now()));
      await local?.core.stopIngress(deadline);
      reliable.sessions?.stop();
      await local?.core.closeBroker();
      await controller.shutdown();
      metricsLogger?.stop();
      for (const s of listenSockets.splice(0)) uws.us_listen_socket_close(s);
      await apiListener?.close();
      await metricsListener?.close();
    },
    closeNow() {
      listenSockets.length = 0;
      closeApp(app);
    },
  };
  return cablecat;
}
