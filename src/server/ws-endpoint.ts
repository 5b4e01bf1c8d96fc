import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import type { Logger } from '../logging/logger.js';
import type { Node } from '../node/node.js';
import type { Session } from '../node/session.js';
import { newSid } from '../node/sid.js';
import { Reply } from './http-io.js';
import { VERSION } from '../version.js';
import { captureUpgrade, originAllowed, queryParam, remoteAddress, type UpgradeOptions } from './request-info.js';
import { safeEqual } from '../auth/keys.js';
import type { ConnectionGate } from '../node/connection-gate.js';

export interface WsEndpointOptions extends UpgradeOptions {
  readonly paths: readonly string[];
  readonly allowedOrigins: readonly string[];
  readonly maxConn: number;
  /** --max_conn admission (the node's, across worker threads); the connection's close gives the place back. */
  readonly gate: ConnectionGate;
  readonly maxMessageSize: number;
  readonly maxPendingBytes: number;
  readonly wsApiKey: string;
}

export interface UserData {
  readonly session: Session;
}

/** Frames above this are dropped by uWS itself (no close code); between max_message_size and it we answer 1009. */
export function hardFrameLimit(maxMessageSize: number): number {
  return Math.max(maxMessageSize * 4, 16 * 1024 * 1024);
}

/** Per-connection memory bound: the too_slow threshold plus room for what arrives before eviction. */
export function backpressureLimit(maxPendingBytes: number): number {
  return maxPendingBytes + Math.max(maxPendingBytes, 4 * 1024 * 1024);
}

/** chi-style `{name}` segments become uWS `:name` parameters. */
export function toUwsPattern(path: string): string {
  return path.replace(/\{([^}]+)\}/g, ':$1');
}

/**
 * The WebSocket endpoint: gates at upgrade (shutdown, max_conn, origin, WebSocket key), picks the
 * sub-protocol, captures the request, and forwards socket events to the node in one line each.
 */
export class WsEndpoint {
  private accepting = true;
  private readonly log: Logger;

  constructor(private readonly opts: WsEndpointOptions, private readonly node: Node, logger: Logger) {
    this.log = logger.child({ component: 'ws' });
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  register(app: TemplatedApp): void {
    for (const path of this.opts.paths) {
      const idFromPath = pathUserIdReader(path);
      app.ws<UserData>(toUwsPattern(path), {
        maxPayloadLength: hardFrameLimit(this.opts.maxMessageSize),
        // Headroom above the too_slow threshold: the node's sweep (every 250 ms) must find the socket
        // before uWS starts dropping, or the too_slow frame and the close frame would be dropped too.
        maxBackpressure: backpressureLimit(this.opts.maxPendingBytes),
        closeOnBackpressureLimit: 0,
        idleTimeout: 0,
        sendPingsAutomatically: false,
        upgrade: (res, req, context) => this.upgrade(res, req, context, idFromPath),
        open: (ws) => this.open(ws),
        // uWS corks the socket for its open and message callbacks: writes made there need no cork of ours.
        message: (ws, message, isBinary) => this.node.onMessage(ws.getUserData().session, message, isBinary, true),
        close: (ws) => this.node.onClose(ws.getUserData().session),
      });
    }
  }

  private refuse(res: HttpResponse, status: string, error: string): void {
    new Reply(res).json(status, { error }, true);
  }

  private upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t, userIdFromPath: (req: HttpRequest) => string): void {
    if (!this.accepting) return this.refuse(res, '503 Service Unavailable', 'shutting_down');
    // Origin is read only when origins are restricted (one header fewer per connect otherwise).
    const origin = this.opts.allowedOrigins.length > 0 ? req.getHeader('origin') : '';
    if (!originAllowed(origin, this.opts.allowedOrigins)) {
      this.log.info({ origin }, 'origin not allowed, upgrade refused');
      return this.refuse(res, '403 Forbidden', 'origin_not_allowed');
    }
    const captured = captureUpgrade(res, req, this.opts);
    let keyUserId: string | null = null;
    if (this.opts.wsApiKey) {
      const key = queryParam(captured.rawQuery, 'token') ?? '';
      if (key !== '' && safeEqual(key, this.opts.wsApiKey)) {
        keyUserId = userIdFromPath(req) || 'user';
      } else if (captured.info.token === '') {
        // A JWT goes through so the JWT layer answers it with frames (token_expired must reach the client).
        this.log.info({ remote: remoteAddress(res) }, 'websocket key missing or wrong, upgrade refused');
        return this.refuse(res, '403 Forbidden', 'invalid_credentials');
      }
    }
    // Last: a place taken here is given back only by the connection's close.
    if (!this.opts.gate.admit()) {
      this.log.warn({ limit: this.opts.maxConn }, 'connection limit reached, upgrade refused');
      return this.refuse(res, '503 Service Unavailable', 'too_many_connections');
    }
    // A literal, not a spread: V8 gave each spread copy a map of its own (~200 bytes per connection).
    const { url, headers, token, restoreSid, pingPrecision } = captured.info;
    const { protocol } = captured;
    const session = this.node.createSession(newSid(), { url, headers, token, keyUserId, protocol, restoreSid, pingPrecision }, captured.pingOverride);
    // No res.cork: uWS corks the response for the length of this (synchronous) handler.
    res.writeStatus('101 Switching Protocols');
    res.writeHeader('X-AnyCable-Version', VERSION);
    // Never echo the anycable-token.* entry; with no offer of ours, JSON is assumed and nothing echoed.
    res.upgrade<UserData>({ session }, captured.secWebSocketKey, captured.protocol, captured.secWebSocketExtensions, context);
  }

  private open(ws: WebSocket<UserData>): void {
    this.node.onOpen(ws.getUserData().session, ws, true);
  }
}

/** Reads the id segment of a key-authenticated path such as /cable/{id} or /cable/*; decided once per pattern. */
function pathUserIdReader(pattern: string): (req: HttpRequest) => string {
  if (/[:{]/.test(pattern)) return (req) => req.getParameter(0) ?? '';
  if (pattern.endsWith('/*')) return (req) => req.getUrl().slice(pattern.length - 1).split('/')[0] ?? '';
  return () => '';
}
