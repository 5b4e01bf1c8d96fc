import type { HttpResponse, HttpRequest } from 'uWebSockets.js';
import { OneShotReply, type BodyResult, type HttpRequestView } from './http-route.js';

export type { BodyResult, HttpReply, HttpRequestView } from './http-route.js';

/**
 * A uWS response wrapped so that abort is handled before any await, writes are corked,
 * and nothing is written after the client went away. `headOnly` answers a HEAD request.
 */
export class Reply extends OneShotReply {
  constructor(readonly res: HttpResponse, private readonly headOnly = false) {
    super();
    // uWS answers only after onAborted is set; it fires even after our answer, which markAborted ignores.
    res.onAborted(() => this.markAborted());
  }

  protected write(status: string, body: string, headers: Readonly<Record<string, string>>, closeConnection: boolean): void {
    this.res.cork(() => {
      this.res.writeStatus(status);
      for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
      if (this.headOnly) {
        // endWithoutBody(length) leaves uWS waiting for that body on a kept-alive connection: only use it when closing.
        const length = Buffer.byteLength(body);
        if (closeConnection) {
          this.res.endWithoutBody(length, true);
        } else {
          this.res.writeHeader('Content-Length', String(length));
          this.res.endWithoutBody();
        }
      } else {
        this.res.end(body, closeConnection);
      }
    });
  }
}

/** Copies a uWS request into a view that outlives the callback (only API routes use it: it copies every header). */
export function uwsRequestView(res: HttpResponse, req: HttpRequest, reply: Reply): HttpRequestView {
  const headers = new Map<string, string>();
  req.forEach((key, value) => headers.set(key, value));
  return {
    method: req.getMethod().toUpperCase(),
    path: req.getUrl(),
    remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString('utf8'),
    getHeader: (name) => headers.get(name) ?? '',
    readBody: (limit) => readUwsBody(reply, headers.get('content-length') ?? '', limit),
  };
}

function readUwsBody(reply: Reply, contentLength: string, limit: number): Promise<BodyResult> {
  const declared = Number.parseInt(contentLength || '0', 10);
  if (declared > limit) return Promise.resolve({ ok: false, reason: 'too_large' });
  return new Promise((resolve) => {
    let settled = false;
    const settle = (result: BodyResult): void => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    reply.onAbort(() => settle({ ok: false, reason: 'aborted' }));
    collectUwsBody(reply.res, limit, settle);
  });
}

/** Collects a uWS request body up to `limit` bytes, then calls `done` once; over the limit it stops reading at once. */
export function collectUwsBody(res: HttpResponse, limit: number, done: (result: BodyResult) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  res.onData((chunk, isLast) => {
    if (settled) return;
    size += chunk.byteLength;
    if (size > limit) {
      settled = true;
      done({ ok: false, reason: 'too_large' });
      return;
    }
    // Copy: uWS reuses the chunk's memory after this callback.
    chunks.push(Buffer.from(new Uint8Array(chunk)));
    if (isLast) {
      settled = true;
      done({ ok: true, body: Buffer.concat(chunks, size) });
    }
  });
}
