import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { CablecatError } from '../errors.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { runRoute } from './http-server.js';
import { allowedMethods, METHOD_NOT_ALLOWED, NOT_FOUND, OneShotReply, type BodyResult, type HttpReply, type HttpRequestView, type HttpRoute } from './http-route.js';

/**
 * The HTTP API on node:http. uWebSockets.js 20.30 never routes a request whose target is in absolute form
 * (`POST http://host:8090/_broadcast HTTP/1.1`, what the anycable gem's HTTP broadcaster sends), an
 * HTTP/1.0 request or an HTTP/1.1 request without Host: it holds them ~10 s and closes. Node's parser
 * answers all of them, so the routes that servers and scripts call (broadcast, health, token, metrics)
 * are served here too.
 */
export class ApiListener {
  private readonly server: Server;
  private readonly log: Logger;
  /** path → its routes and the Allow header of a 405, worked out once. */
  private readonly byPath = new Map<string, { readonly routes: HttpRoute[]; readonly allow: string }>();

  constructor(
    routes: readonly HttpRoute[],
    private readonly metrics: Metrics,
    logger: Logger,
    component = 'http_api',
    /** The flag that sets this listener's port, named when the port is taken. */
    private readonly portFlag = '--http_broadcast_port',
  ) {
    this.log = logger.child({ component });
    for (const route of routes) {
      const entry = this.byPath.get(route.pattern);
      if (entry) entry.routes.push(route);
      else this.byPath.set(route.pattern, { routes: [route], allow: allowedMethods(routes, route.pattern) });
    }
    // requireHostHeader: false so that we answer a missing Host ourselves, with a JSON body.
    this.server = createServer({ requireHostHeader: false, headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => this.dispatch(req, res));
    this.server.keepAliveTimeout = 5_000;
    this.server.on('clientError', (err: Error & { code?: string }, socket: Socket) => this.onClientError(err, socket));
  }

  /** Resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error & { code?: string }): void => {
        reject(new CablecatError('CABLECAT_ERR_LISTEN', `cannot listen on ${host}:${port} for the HTTP API (${err.code ?? err.message}): ` +
          `set ${this.portFlag} to a free port`));
      };
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        const address = this.server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  /** Stops accepting, ends idle keep-alive connections, and gives in-flight requests until `graceMs`. */
  close(graceMs = 1_000): Promise<void> {
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      const force = setTimeout(() => this.server.closeAllConnections(), graceMs);
      force.unref();
      this.server.close(() => { clearTimeout(force); resolve(); });
      this.server.closeIdleConnections();
    });
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    const reply = new NodeReply(res);
    if (req.httpVersion === '1.1' && req.headers.host === undefined) {
      // RFC 9112 §3.2: an HTTP/1.1 request without Host gets 400.
      this.metrics.counters.http_bad_requests_total++;
      this.log.debug({ method: req.method, url: req.url }, 'HTTP/1.1 request without Host');
      reply.json('400 Bad Request', { error: 'bad_request', detail: 'HTTP/1.1 request without a Host header' }, true);
      return;
    }
    const path = targetPath(req.url ?? '');
    if (path === null) {
      this.metrics.counters.http_bad_requests_total++;
      this.log.debug({ method: req.method, url: req.url }, 'unsupported request target');
      reply.json('400 Bad Request', { error: 'bad_request', detail: 'unsupported request target' }, true);
      return;
    }
    const method = req.method ?? 'GET';
    const onPath = this.byPath.get(path);
    if (onPath === undefined) {
      reply.json('404 Not Found', NOT_FOUND);
      return;
    }
    const route = onPath.routes.find((r) => r.method.toUpperCase() === method || (method === 'HEAD' && r.method === 'get'));
    if (route) {
      runRoute(route, reply, nodeRequestView(req, reply, path), this.log);
      return;
    }
    reply.send('405 Method Not Allowed', JSON.stringify(METHOD_NOT_ALLOWED), { 'Content-Type': 'application/json', Allow: onPath.allow });
  }

  /** A request node's parser rejects: a JSON 400 (or 431/413) and close, never a silent hang. */
  private onClientError(err: Error & { code?: string }, socket: Socket): void {
    if (!socket.writable || err.code === 'ECONNRESET') { socket.destroy(); return; }
    this.metrics.counters.http_bad_requests_total++;
    this.log.debug({ code: err.code }, 'unparseable HTTP request');
    const [status, error] = err.code === 'HPE_HEADER_OVERFLOW'
      ? ['431 Request Header Fields Too Large', 'headers_too_large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? ['408 Request Timeout', 'request_timeout'] : ['400 Bad Request', 'bad_request'];
    const body = JSON.stringify({ error });
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
}

/** The path of an origin-form (`/x?y`) or absolute-form (`http://h:p/x?y`) target; null for anything else. */
export function targetPath(target: string): string | null {
  if (target.startsWith('/')) {
    const q = target.indexOf('?');
    return q === -1 ? target : target.slice(0, q);
  }
  if (/^https?:\/\//i.test(target)) {
    try {
      return new URL(target).pathname;
    } catch {
      return null;
    }
  }
  return null;
}

class NodeReply extends OneShotReply {
  constructor(private readonly res: ServerResponse) {
    super();
    res.on('close', () => this.markAborted());
  }

  protected write(status: string, body: string, headers: Readonly<Record<string, string>>, closeConnection: boolean): void {
    const space = status.indexOf(' ');
    const code = Number.parseInt(space === -1 ? status : status.slice(0, space), 10);
    const all: Record<string, string> = { ...headers, 'Content-Length': String(Buffer.byteLength(body)) };
    if (closeConnection) all.Connection = 'close';
    this.res.writeHead(code, space === -1 ? undefined : status.slice(space + 1), all);
    // Node drops the body of an answer to HEAD by itself.
    this.res.end(body);
  }
}

function nodeRequestView(req: IncomingMessage, reply: NodeReply, path: string): HttpRequestView {
  return {
    method: req.method ?? 'GET',
    path,
    remoteAddress: req.socket.remoteAddress ?? '',
    getHeader: (name) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(', ') : value ?? '';
    },
    readBody: (limit) => readNodeBody(req, reply, limit),
  };
}

function readNodeBody(req: IncomingMessage, reply: NodeReply, limit: number): Promise<BodyResult> {
  const declared = Number.parseInt(req.headers['content-length'] ?? '0', 10);
  if (declared > limit) return Promise.resolve({ ok: false, reason: 'too_large' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (result: BodyResult): void => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    reply.onAbort(() => settle({ ok: false, reason: 'aborted' }));
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.byteLength;
      if (size > limit) {
        settle({ ok: false, reason: 'too_large' });
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => settle({ ok: true, body: Buffer.concat(chunks, size) }));
    req.on('error', () => settle({ ok: false, reason: 'aborted' }));
  });
}
