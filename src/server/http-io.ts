import type { HttpResponse, HttpRequest } from 'uWebSockets.js';

/**
 * A uWS response wrapped so that abort is handled before any await, writes are corked,
 * and nothing is written after the client went away.
 */
export class Reply {
  aborted = false;
  private done = false;
  private readonly abortHandlers: Array<() => void> = [];

  constructor(readonly res: HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
      for (const handler of this.abortHandlers) handler();
    });
  }

  onAbort(handler: () => void): void {
    this.abortHandlers.push(handler);
  }

  get finished(): boolean {
    return this.aborted || this.done;
  }

  send(status: string, body = '', headers: Readonly<Record<string, string>> = {}, closeConnection = false): void {
    if (this.finished) return;
    this.done = true;
    this.res.cork(() => {
      this.res.writeStatus(status);
      for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
      this.res.end(body, closeConnection);
    });
  }

  json(status: string, value: unknown, closeConnection = false): void {
    this.send(status, JSON.stringify(value), { 'Content-Type': 'application/json' }, closeConnection);
  }
}

export type BodyResult = { readonly ok: true; readonly body: Buffer } | { readonly ok: false; readonly reason: 'too_large' | 'aborted' };

/** Collects a request body up to `limit` bytes. Over the limit it stops reading at once. */
export function readBody(reply: Reply, req: HttpRequest, limit: number): Promise<BodyResult> {
  const declared = Number.parseInt(req.getHeader('content-length') || '0', 10);
  if (declared > limit) return Promise.resolve({ ok: false, reason: 'too_large' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    reply.onAbort(() => { if (!settled) { settled = true; resolve({ ok: false, reason: 'aborted' }); } });
    reply.res.onData((chunk, isLast) => {
      if (settled) return;
      size += chunk.byteLength;
      if (size > limit) {
        settled = true;
        resolve({ ok: false, reason: 'too_large' });
        return;
      }
      // Copy: uWS reuses the chunk's memory after this callback.
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) {
        settled = true;
        resolve({ ok: true, body: Buffer.concat(chunks, size) });
      }
    });
  });
}
