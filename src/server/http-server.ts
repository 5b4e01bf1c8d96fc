import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { Uws } from './uws.js';
import { Reply, uwsRequestView } from './http-io.js';
import { allowedMethods, METHOD_NOT_ALLOWED, NOT_FOUND, type HttpReply, type HttpRequestView, type HttpRoute } from './http-route.js';
import { CablecatError, errorMessage } from '../errors.js';
import type { Logger } from '../logging/logger.js';

export type { HttpMethod, HttpRoute } from './http-route.js';

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  readonly sslCert: string;
  readonly sslKey: string;
}

export function createApp(uws: Uws, opts: Pick<ListenOptions, 'sslCert' | 'sslKey'>): TemplatedApp {
  return opts.sslCert ? uws.SSLApp({ cert_file_name: opts.sslCert, key_file_name: opts.sslKey }) : uws.App();
}

/** Runs a route handler; a thrown or rejected handler becomes a 500 and an error log, never a crash. */
export function runRoute(route: HttpRoute, reply: HttpReply, req: HttpRequestView, log: Logger): void {
  const fail = (err: unknown): void => {
    log.error({ method: route.method, path: route.pattern, err: errorMessage(err), stack: err instanceof Error ? err.stack : undefined }, 'http handler failed');
    reply.json('500 Internal Server Error', { error: 'internal_error' });
  };
  try {
    const result = route.handle(reply, req);
    if (result instanceof Promise) result.catch(fail);
  } catch (err) {
    fail(err);
  }
}

/**
 * Registers routes on uWS, answering 405 for other methods on a known path and 404 elsewhere, all in JSON.
 * GET routes answer HEAD too. Requests uWS 20.30 cannot parse (absolute-form target, HTTP/1.0, HTTP/1.1
 * without Host) never reach any handler: those clients use the node:http API port (api-listener.ts).
 */
export function registerRoutes(app: TemplatedApp, routes: readonly HttpRoute[], log: Logger): void {
  const patterns = new Set<string>();
  for (const route of routes) {
    patterns.add(route.pattern);
    app[route.method](route.pattern, (res, req) => {
      const reply = new Reply(res);
      runRoute(route, reply, uwsRequestView(res, req, reply), log);
    });
    if (route.method === 'get') {
      app.head(route.pattern, (res, req) => {
        const reply = new Reply(res, true);
        runRoute(route, reply, uwsRequestView(res, req, reply), log);
      });
    }
  }
  for (const pattern of patterns) {
    const allowed = allowedMethods(routes, pattern);
    app.any(pattern, (res) => {
      new Reply(res).send('405 Method Not Allowed', JSON.stringify(METHOD_NOT_ALLOWED), { 'Content-Type': 'application/json', Allow: allowed });
    });
  }
  app.any('/*', (res) => new Reply(res).json('404 Not Found', NOT_FOUND));
}

/** uWS's ListenOptions.LIBUS_LISTEN_EXCLUSIVE_PORT: no SO_REUSEPORT on the listen socket. */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;
type ListenWithOptions = (host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void) => TemplatedApp;

/** uWS 20.30 takes listen(host, port, options, cb) natively; its typings lack that overload. */
function listenWithOptions(app: TemplatedApp): ListenWithOptions {
  const fn = app.listen as unknown as ListenWithOptions;
  return (host, port, options, cb) => fn.call(app, host, port, options, cb);
}

/**
 * Resolves with the bound port (useful with port 0). uWS sets SO_REUSEPORT by default, so a second
 * server on a taken port would start silently and take half the traffic: we listen exclusively.
 * `shared`: a worker thread of a node listens with SO_REUSEPORT beside its siblings; its primary
 * keeps the port the node's alone (src/cluster/port-guard.ts).
 */
export function listen(uws: Uws, app: TemplatedApp, host: string, port: number, shared = false): Promise<{ socket: us_listen_socket; port: number }> {
  return new Promise((resolve, reject) => {
    listenWithOptions(app)(host, port, shared ? 0 : LIBUS_LISTEN_EXCLUSIVE_PORT, (socket) => {
      if (socket === false) reject(new CablecatError('CABLECAT_ERR_LISTEN', `cannot listen on ${host}:${port}: port ${port} is in use (or not permitted)`));
      else resolve({ socket, port: uws.us_socket_local_port(socket) });
    });
  });
}

/** Closes the app's listen sockets and every connection at once (uWS 20.30 has app.close(); its typings lack it). */
export function closeApp(app: TemplatedApp): void {
  (app as unknown as { close(): void }).close();
}
