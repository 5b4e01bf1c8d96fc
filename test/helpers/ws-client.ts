import WebSocket from 'ws';

export interface Closed {
  readonly code: number;
  readonly reason: string;
}

/** A raw ws client that queues frames so tests can assert exact frames in order. */
export class RawClient {
  readonly ws: WebSocket;
  readonly frames: string[] = [];
  private waiters: Array<() => void> = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<Closed>;
  /** Frames of these types are skipped by next() (anyt ignores pings by default). */
  ignore = new Set<string>(['ping']);
  upgradeHeaders: Record<string, string | string[] | undefined> = {};
  unexpectedStatus = 0;

  /** `rejectUnauthorized: false` accepts a self-signed wss certificate (TLS tests). */
  constructor(url: string, opts: { protocols?: string[] | undefined; headers?: Record<string, string>; ignore?: string[]; rejectUnauthorized?: boolean } = {}) {
    this.ws = new WebSocket(url, opts.protocols ?? ['actioncable-v1-json'], { headers: opts.headers ?? {}, rejectUnauthorized: opts.rejectUnauthorized ?? true });
    if (opts.ignore) this.ignore = new Set(opts.ignore);
    this.ws.on('upgrade', (res) => { this.upgradeHeaders = res.headers; });
    this.ws.on('message', (data, isBinary) => {
      const text = isBinary ? `<binary ${(data as Buffer).length}>` : data.toString();
      this.frames.push(text);
      this.wake();
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => {
        this.unexpectedStatus = res.statusCode ?? 0;
        reject(new Error(`unexpected response ${res.statusCode}`));
      });
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => { this.wake(); resolve({ code, reason: reason.toString() }); }));
  }

  static async connect(url: string, opts: ConstructorParameters<typeof RawClient>[1] = {}): Promise<RawClient> {
    const client = new RawClient(url, opts);
    await client.opened;
    return client;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private takeMatching(): string | undefined {
    while (this.frames.length > 0) {
      const frame = this.frames.shift()!;
      const type = safeType(frame);
      if (type !== undefined && this.ignore.has(type)) continue;
      return frame;
    }
    return undefined;
  }

  /** The next frame (not ignored), as text; rejects after `timeoutMs`. */
  async nextText(timeoutMs = 3000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.takeMatching();
      if (frame !== undefined) return frame;
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('socket closed while waiting for a frame');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a frame');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  async next(timeoutMs = 3000): Promise<unknown> {
    return JSON.parse(await this.nextText(timeoutMs)) as unknown;
  }

  /** Asserts nothing (not ignored) arrives within `ms`. Returns the frame if one did. */
  async nothingWithin(ms = 300): Promise<string | null> {
    await new Promise((r) => setTimeout(r, ms));
    return this.takeMatching() ?? null;
  }

  /** Stops reading the TCP socket, so the server's send buffer for this client fills up. */
  pauseReading(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  resumeReading(): void {
    (this.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  }

  send(value: unknown): void {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  subscribe(identifier: string): void {
    this.send({ command: 'subscribe', identifier });
  }

  perform(identifier: string, data: Record<string, unknown>): void {
    this.send({ command: 'message', identifier, data: JSON.stringify(data) });
  }

  close(): Promise<Closed> {
    this.ws.close();
    return this.closed;
  }
}

function safeType(frame: string): string | undefined {
  try {
    const v = JSON.parse(frame) as { type?: unknown };
    return typeof v.type === 'string' ? v.type : undefined;
  } catch {
    return undefined;
  }
}

export function identifier(channel: string, params: Record<string, unknown> = {}): string {
  return JSON.stringify({ channel, ...params });
}
