import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ConnectionGate } from '../node/connection-gate.js';
import type { Node } from '../node/node.js';
import type { Session } from '../node/session.js';
import { newSid } from '../node/sid.js';
import type { TopicPublisher } from '../hub/hub.js';
import { CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_TRY_AGAIN_LATER } from '../protocol/messages.js';
import { captureUpgrade, originAllowed, remoteAddress, type CapturedUpgrade, type UpgradeOptions } from '../server/request-info.js';
import { safeEqual } from '../auth/keys.js';
import { VERSION } from '../version.js';
import { SseSocket, type SseSocketListener } from './sse-socket.js';
import type { SseTopics } from './sse-topics.js';
import { commandsFromBody, commandsFromQuery, MAX_POST_BODY_BYTES, type SseCommands, type SubscribeFrame } from './sse-request.js';
import { collectUwsBody, Reply } from '../server/http-io.js';

export interface SseEndpointOptions extends UpgradeOptions {
  readonly path: string;
  readonly allowedOrigins: readonly string[];
  readonly maxConn: number;
  /** --max_conn admission, shared with WebSockets; the stream's close gives the place back. */
  readonly gate: ConnectionGate;
  readonly wsApiKey: string;
}

type Headers = Readonly<Record<string, string>>;

const JSON_TYPE: Headers = { 'Content-Type': 'application/json' };

/** Body of every refusal: `{"error":…}`, with a `detail` when there is one. */
function errorBody(error: string, detail?: string): string {
  return JSON.stringify(detail === undefined ? { error } : { error, detail });
}

/** anycable-go's stream headers: never cached, never buffered by a proxy. */
const STREAM_HEADERS: Headers = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'private, no-cache, no-store, must-revalidate, max-age=0',
  Pragma: 'no-cache',
  Expires: '0',
  'X-Content-Type-Options': 'nosniff',
  'X-Accel-Buffering': 'no',
  'X-AnyCable-Version': VERSION,
};

/**
 * The SSE endpoint (`--sse`, `--sse_path`): GET names one subscription in the query, POST sends JSONL
 * subscribe commands. Each request becomes a node session with an SSE socket, so authentication,
 * commands, broadcasts, pings and disconnects are the WebSocket transport's. The status waits for the
 * answers: 200 and a stream once authenticated and every subscription confirmed; 401 when
 * authentication fails, 400 when a subscription is rejected or the request names none.
 */
export class SseEndpoint {
  private accepting = true;
  private streams = 0;
  private readonly log: Logger;

  constructor(
    private readonly opts: SseEndpointOptions,
    private readonly node: Node,
    private readonly topics: SseTopics,
    private readonly uws: TopicPublisher,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'sse' });
    metrics.registerGauge('sse_clients_num', () => this.streams);
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  register(app: TemplatedApp): void {
    const path = this.opts.path;
    app.get(path, (res, req) => this.request(res, req, 'GET'));
    app.post(path, (res, req) => this.request(res, req, 'POST'));
    app.options(path, (res, req) => this.preflight(res, req));
    app.any(path, (res) => {
      new Reply(res).send('405 Method Not Allowed', errorBody('method_not_allowed'), { ...JSON_TYPE, Allow: 'GET, POST, OPTIONS' }, true);
    });
  }

  /** CORS for cross-origin EventSource and fetch: the Origin is echoed when allowed, with credentials (cookies). */
  private corsHeaders(origin: string): Record<string, string> {
    if (origin === '') return {};
    return {
      'Access-Control-Allow-Origin': origin,
      'Access-Control-Allow-Credentials': 'true',
      Vary: 'Origin',
    };
  }

  private preflight(res: HttpResponse, req: HttpRequest): void {
    const origin = req.getHeader('origin');
    const allowed = originAllowed(origin, this.opts.allowedOrigins);
    const headers: Record<string, string> = allowed ? {
      ...this.corsHeaders(origin),
      'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
      'Access-Control-Allow-Headers': `Authorization, Cache-Control, Content-Type, Last-Event-ID, X-${this.opts.jwtParam}`,
      'Access-Control-Max-Age': '600',
    } : {};
    res.cork(() => {
      res.writeStatus(allowed ? '204 No Content' : '403 Forbidden');
      for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
      res.end(undefined, true);
    });
  }

  private request(res: HttpResponse, req: HttpRequest, method: 'GET' | 'POST'): void {
    // Logged after the request callback (refusals, stream open), so read now.
    const remote = remoteAddress(res);
    // Always read here (not only when origins are restricted): CORS echoes it for cross-origin EventSource.
    const origin = req.getHeader('origin');
    const cors = this.corsHeaders(origin);
    const lastEventId = req.getHeader('last-event-id');
    const contentLength = req.getHeader('content-length');
    const answer = (status: string, error: string): void => new Reply(res).send(status, errorBody(error), { ...JSON_TYPE, ...cors }, true);
    if (!this.accepting) return answer('503 Service Unavailable', 'shutting_down');
    if (!originAllowed(origin, this.opts.allowedOrigins)) {
      this.log.info({ origin }, 'origin not allowed, SSE request refused');
      return answer('403 Forbidden', 'origin_not_allowed');
    }
    // After the checks that need none of it (as for a websocket upgrade).
    const captured = captureUpgrade(res, req, this.opts);
    const query = new URLSearchParams(captured.rawQuery);
    let keyUserId: string | null = null;
    if (this.opts.wsApiKey) {
      const key = query.get('token') ?? '';
      if (key !== '' && safeEqual(key, this.opts.wsApiKey)) {
        keyUserId = 'user';
      } else if (captured.info.token === '') {
        this.metrics.counters.failed_auths_total++;
        this.log.info({ remote }, 'websocket key missing or wrong, SSE request refused');
        return answer('401 Unauthorized', 'unauthorized');
      }
    }
    // Last before the session: a place taken here is given back by the stream's close, or below if it never opens.
    if (!this.opts.gate.admit()) {
      this.log.warn({ limit: this.opts.maxConn }, 'connection limit reached, SSE request refused');
      return answer('503 Service Unavailable', 'too_many_connections');
    }
    // EventSource reads events; fetch clients of POST read the protocol: raw=1 unwraps there too.
    const raw = query.get('raw');
    const unwrap = raw === '1' || raw === 'true' || (method === 'GET' && raw !== '0' && raw !== 'false');
    const connection = new SseConnection(this, captured, remote, cors, keyUserId);
    const socket = new SseSocket(res, this.topics, this.uws, unwrap, connection);
    connection.socket = socket;
    if (method === 'GET') {
      connection.start(commandsFromQuery(query, lastEventId));
      return;
    }
    const tooLarge = (): void => connection.refuse('413 Payload Too Large', 'body_too_large', `the body is limited to ${MAX_POST_BODY_BYTES} bytes`);
    // A declared length over the limit is refused before any of the body is read.
    if (Number.parseInt(contentLength || '0', 10) > MAX_POST_BODY_BYTES) return tooLarge();
    collectUwsBody(res, MAX_POST_BODY_BYTES, (body) => {
      // A client gone before its body ended never gets here (uWS only reports the abort): see aborted().
      if (socket.isClosed) return;
      if (!body.ok) return tooLarge();
      connection.start(commandsFromBody(body.body.toString('utf8'), query, lastEventId));
    });
  }

  // ---- used by connections ----------------------------------------------------------------

  /** @internal */
  openSession(connection: SseConnection, frames: readonly SubscribeFrame[]): void {
    const { url, headers, token, pingPrecision } = connection.captured.info;
    // Plain JSON protocol; no session restore (an SSE client resumes its streams with Last-Event-ID instead).
    const request = { url, headers, token, keyUserId: connection.keyUserId, protocol: '' as const, restoreSid: '', pingPrecision };
    const session = this.node.createSession(newSid(), request, connection.captured.pingOverride);
    connection.session = session;
    this.node.onOpen(session, connection.socket!);
    // The subscribe commands queue behind authentication, exactly as frames of a websocket would.
    for (const frame of frames) this.node.onMessage(session, toArrayBuffer(frame.text), false);
  }

  /** @internal */
  established(connection: SseConnection): void {
    this.streams++;
    connection.socket!.establish({ ...STREAM_HEADERS, ...connection.cors });
    if (this.log.isLevelEnabled('debug')) this.log.debug({ sid: connection.session?.sid, remote: connection.remoteAddress }, 'SSE stream open');
  }

  /** @internal A request admitted against --max_conn that will never open a session gives its place back. */
  notOpened(): void {
    this.opts.gate.release();
  }

  /** @internal */
  streamClosed(): void {
    this.streams--;
  }

  /** @internal */
  clientGone(connection: SseConnection): void {
    if (connection.session) this.node.onClose(connection.session);
  }

  /** @internal */
  refused(connection: SseConnection, status: string, error: string, detail: string | undefined): void {
    const level = status.startsWith('5') ? 'warn' : 'info';
    this.log[level]({ sid: connection.session?.sid, status: Number.parseInt(status, 10), error, detail, remote: connection.remoteAddress }, 'SSE request refused');
    if (error !== 'unauthorized') this.metrics.counters.failed_client_msg_total++;
  }
}

/**
 * One SSE request on its way to a stream: it waits for the answers to its subscribe commands (the
 * frames the session writes) and then has the socket either stream or refuse.
 */
class SseConnection implements SseSocketListener {
  socket: SseSocket | null = null;
  /** Admitted against --max_conn: the place is this request's until a session takes it over. */
  private holdsPlace = true;
  session: Session | null = null;
  /** Subscriptions not answered yet. */
  private readonly waiting = new Set<string>();
  private rejected = false;
  private deciding = false;

  constructor(
    private readonly endpoint: SseEndpoint,
    readonly captured: CapturedUpgrade,
    readonly remoteAddress: string,
    readonly cors: Headers,
    readonly keyUserId: string | null,
  ) {}

  start(commands: SseCommands): void {
    if (!commands.ok) {
      this.refuse(commands.error.status, commands.error.error, commands.error.detail);
      return;
    }
    for (const frame of commands.frames) this.waiting.add(frame.identifier);
    // From here the session holds the --max_conn place; its close gives it back.
    this.holdsPlace = false;
    this.endpoint.openSession(this, commands.frames);
  }

  /** An error answer instead of a stream; a request no session took over gives its --max_conn place back first. */
  refuse(status: string, error: string, detail?: string): void {
    this.releasePlace();
    this.endpoint.refused(this, status, error, detail);
    this.socket?.refuse(status, errorBody(error, detail), { ...JSON_TYPE, ...this.cors });
  }

  pendingFrame(frame: string): void {
    let parsed: { type?: unknown; identifier?: unknown };
    try {
      parsed = JSON.parse(frame) as { type?: unknown; identifier?: unknown };
    } catch {
      return;
    }
    if (typeof parsed.identifier !== 'string' || !this.waiting.has(parsed.identifier)) return;
    if (parsed.type === 'confirm_subscription') this.waiting.delete(parsed.identifier);
    else if (parsed.type === 'reject_subscription') {
      this.waiting.delete(parsed.identifier);
      this.rejected = true;
    } else return;
    if (this.waiting.size > 0 || this.deciding) return;
    // Decided after the frames of this answer are all written (the rest of its transmissions follow synchronously).
    this.deciding = true;
    queueMicrotask(() => this.decide());
  }

  private decide(): void {
    const socket = this.socket;
    const session = this.session;
    if (socket === null || session === null || socket.isClosed) return;
    if (this.rejected) {
      this.refuse('400 Bad Request', 'subscription_rejected');
      session.close(CLOSE_NORMAL);
      return;
    }
    this.endpoint.established(this);
  }

  pendingEnd(code: number): void {
    const openedBefore = this.session?.state === 'open';
    if (code === CLOSE_GOING_AWAY) this.refuse('503 Service Unavailable', 'shutting_down');
    else if (code === CLOSE_TRY_AGAIN_LATER) this.refuse('503 Service Unavailable', 'try_again_later');
    else if (code === CLOSE_INTERNAL_ERROR) this.refuse('500 Internal Server Error', 'internal_error');
    else if (!openedBefore) this.refuse('401 Unauthorized', 'unauthorized');
    else this.refuse('400 Bad Request', 'subscription_rejected', 'the application closed the connection');
  }

  aborted(): void {
    // Gone before a session opened (e.g. while its POST body was still coming): nothing else gives the place back.
    this.releasePlace();
    this.endpoint.clientGone(this);
  }

  /** Gives back the --max_conn place taken for this request, once, if no session took it over. */
  private releasePlace(): void {
    if (!this.holdsPlace) return;
    this.holdsPlace = false;
    this.endpoint.notOpened();
  }

  streamClosed(): void {
    this.endpoint.streamClosed();
  }
}

function toArrayBuffer(text: string): ArrayBuffer {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

