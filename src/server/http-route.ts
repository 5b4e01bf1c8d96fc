/**
 * Transport-neutral HTTP routes: the same handler answers on the uWS main port and on the node:http API
 * port (which understands every HTTP/1.x request form uWS 20.30 cannot parse).
 */
export type HttpMethod = 'get' | 'post';

export type BodyResult = { readonly ok: true; readonly body: Buffer } | { readonly ok: false; readonly reason: 'too_large' | 'aborted' };

/** What a handler may read from a request. Read everything before the first await (uWS requests die with the callback). */
export interface HttpRequestView {
  /** Upper-case method. */
  readonly method: string;
  /** The path, without the query (absolute-form targets are reduced to their path). */
  readonly path: string;
  readonly remoteAddress: string;
  /** A header by its lower-case name; '' when absent. */
  getHeader(lowerCaseName: string): string;
  /** Collects the body up to `limit` bytes, stopping at once above it. Call it before any await. */
  readBody(limit: number): Promise<BodyResult>;
}

/** One answer per request; writes after the client went away or after the answer are ignored. */
export interface HttpReply {
  readonly aborted: boolean;
  readonly finished: boolean;
  onAbort(handler: () => void): void;
  /** `status` is the full status line text, e.g. '201 Created'. */
  send(status: string, body?: string, headers?: Readonly<Record<string, string>>, closeConnection?: boolean): void;
  json(status: string, value: unknown, closeConnection?: boolean): void;
}

/**
 * What both listeners' replies share: abort bookkeeping, one answer at most, nothing after the client
 * went away. Subclasses only write the answer in their server's terms.
 */
export abstract class OneShotReply implements HttpReply {
  aborted = false;
  private done = false;
  private readonly abortHandlers: Array<() => void> = [];

  onAbort(handler: () => void): void {
    this.abortHandlers.push(handler);
  }

  get finished(): boolean {
    return this.aborted || this.done;
  }

  /** The client went away: tell whoever waits on the answer. */
  protected markAborted(): void {
    if (this.done) return;
    this.aborted = true;
    for (const handler of this.abortHandlers) handler();
  }

  send(status: string, body = '', headers: Readonly<Record<string, string>> = {}, closeConnection = false): void {
    if (this.finished) return;
    this.done = true;
    this.write(status, body, headers, closeConnection);
  }

  json(status: string, value: unknown, closeConnection = false): void {
    this.send(status, JSON.stringify(value), { 'Content-Type': 'application/json' }, closeConnection);
  }

  protected abstract write(status: string, body: string, headers: Readonly<Record<string, string>>, closeConnection: boolean): void;
}

export interface HttpRoute {
  /** A GET route answers HEAD too, with the same status and headers and no body. */
  readonly method: HttpMethod;
  /** An exact path. */
  readonly pattern: string;
  readonly handle: (reply: HttpReply, req: HttpRequestView) => void | Promise<void>;
}

/** Body of a 405: the methods a path accepts (GET implies HEAD). */
export function allowedMethods(routes: readonly HttpRoute[], pattern: string): string {
  const methods = routes.filter((r) => r.pattern === pattern).flatMap((r) => (r.method === 'get' ? ['GET', 'HEAD'] : [r.method.toUpperCase()]));
  return [...new Set(methods)].join(', ');
}

export const NOT_FOUND = { error: 'not_found' } as const;
export const METHOD_NOT_ALLOWED = { error: 'method_not_allowed' } as const;
