import { connect, type Socket } from 'node:net';

/** One Server-Sent Event as parsed by the spec's rules, with the exact text it came in. */
export interface SseEvent {
  /** '' for the default (message) event. */
  readonly event: string;
  readonly data: string;
  readonly id: string | null;
  readonly retry: string | null;
  /** The block as received, without the blank line that ended it. */
  readonly raw: string;
}

export interface SseRequest {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

/**
 * A raw HTTP/1.1 client for SSE: sends the request byte for byte, parses the head, decodes the chunked
 * body as it streams, and hands out events one by one. A non-streaming answer is read whole (`body`).
 */
export class SseStream {
  statusLine = '';
  status = 0;
  readonly headers: Record<string, string> = {};
  /** Decoded body text received so far (a streaming answer: every event; otherwise the error body). */
  body = '';
  private wireChunks: Buffer[] = [];
  private wireBytes = 0;
  private buffer: Buffer = Buffer.alloc(0);
  private headDone = false;
  private chunked = false;
  private chunkState: 'size' | 'data' | 'crlf' = 'size';
  private chunkLeft = 0;
  /** Decoded text not yet cut into events. */
  private unparsed = '';
  private readonly events: SseEvent[] = [];
  private waiter: (() => void) | null = null;
  private endedFlag = false;
  /** Resolves when the server ended the response (terminating chunk or connection close). */
  readonly ended: Promise<void>;
  private resolveEnded!: () => void;

  private constructor(private readonly socket: Socket) {
    this.ended = new Promise((resolve) => { this.resolveEnded = resolve; });
  }

  static open(port: number, path: string, req: SseRequest = {}): Promise<SseStream> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      const stream = new SseStream(socket);
      const method = req.method ?? 'GET';
      const body = req.body ?? '';
      const headers: Record<string, string> = { Host: `127.0.0.1:${port}`, Accept: 'text/event-stream', ...req.headers };
      if (method === 'POST' && headers['Content-Length'] === undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
      // An empty value leaves the header out (a chunked upload).
      for (const [name, value] of Object.entries(headers)) if (value === '') delete headers[name];
      socket.on('connect', () => {
        socket.write(`${method} ${path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
        if (body !== '') socket.write(body);
      });
      const timer = setTimeout(() => reject(new Error(`no response head within 5 s for ${path}`)), 5000);
      socket.on('data', (chunk: Buffer) => {
        stream.receive(chunk);
        if (stream.headDone) { clearTimeout(timer); resolve(stream); }
      });
      const finish = (): void => {
        clearTimeout(timer);
        stream.finish();
        if (!stream.headDone) reject(new Error(`connection closed before a response head for ${path}`));
      };
      socket.on('end', finish);
      socket.on('close', finish);
      socket.on('error', (err) => { clearTimeout(timer); stream.finish(); if (!stream.headDone) reject(err); });
    });
  }

  /** Body bytes exactly as they came off the wire (chunk framing included). */
  get wire(): Buffer {
    return Buffer.concat(this.wireChunks);
  }

  /** Parsed JSON of a non-streaming answer's body. */
  json(): unknown {
    return JSON.parse(this.body);
  }

  get isEnded(): boolean {
    return this.endedFlag;
  }

  /** The next event; rejects after `timeoutMs` or when the stream ended first. */
  async next(timeoutMs = 3000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length === 0) {
      if (this.endedFlag) throw new Error(`stream ended; body so far: ${JSON.stringify(this.body)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no event within ${timeoutMs} ms; body so far: ${JSON.stringify(this.body)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => { clearTimeout(timer); resolve(); };
      });
    }
    return this.events.shift()!;
  }

  /** Events until one of type `event` (skipping pings by default), that one included. */
  async nextOf(event: string, timeoutMs = 3000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = await this.next(Math.max(1, deadline - Date.now()));
      if (e.event === event) return e;
    }
  }

  /** The next event that is not a ping. */
  async nextNonPing(timeoutMs = 3000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = await this.next(Math.max(1, deadline - Date.now()));
      if (e.event !== 'ping') return e;
    }
  }

  /** Stops reading from the socket (the kernel buffers fill up and the server sees backpressure). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    if (!this.headDone) {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const [statusLine = '', ...lines] = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
      this.statusLine = statusLine;
      this.status = Number(statusLine.split(' ')[1]);
      for (const line of lines) {
        const colon = line.indexOf(':');
        this.headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      this.headDone = true;
      this.chunked = this.headers['transfer-encoding'] === 'chunked';
      chunk = this.buffer.subarray(end + 4);
      this.buffer = Buffer.alloc(0);
    }
    this.wireChunks.push(chunk);
    this.wireBytes += chunk.length;
    if (!this.chunked) {
      this.body += chunk.toString('utf8');
      const length = this.headers['content-length'];
      if (length !== undefined && this.wireBytes >= Number(length)) this.finish();
      return;
    }
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this.decodeChunks();
  }

  private decodeChunks(): void {
    for (;;) {
      if (this.chunkState === 'size') {
        const eol = this.buffer.indexOf('\r\n');
        if (eol === -1) return;
        const size = Number.parseInt(this.buffer.subarray(0, eol).toString('latin1'), 16);
        this.buffer = this.buffer.subarray(eol + 2);
        if (size === 0) { this.finish(); return; }
        this.chunkLeft = size;
        this.chunkState = 'data';
      } else if (this.chunkState === 'data') {
        if (this.buffer.length === 0) return;
        const take = Math.min(this.chunkLeft, this.buffer.length);
        const text = this.buffer.subarray(0, take).toString('utf8');
        this.body += text;
        this.unparsed += text;
        this.buffer = this.buffer.subarray(take);
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) this.chunkState = 'crlf';
        this.parseEvents();
      } else {
        if (this.buffer.length < 2) return;
        this.buffer = this.buffer.subarray(2);
        this.chunkState = 'size';
      }
    }
  }

  private parseEvents(): void {
    for (;;) {
      const end = this.unparsed.indexOf('\n\n');
      if (end === -1) return;
      const raw = this.unparsed.slice(0, end);
      this.unparsed = this.unparsed.slice(end + 2);
      let event = '';
      const data: string[] = [];
      let id: string | null = null;
      let retry: string | null = null;
      for (const line of raw.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
        else if (field === 'retry') retry = value;
      }
      // A block of comments only dispatches nothing (spec: empty data buffer).
      if (data.length === 0 && retry === null) continue;
      this.events.push({ event, data: data.join('\n'), id, retry, raw });
      this.waiter?.();
    }
  }

  private finish(): void {
    if (this.endedFlag) return;
    this.endedFlag = true;
    this.socket.destroy();
    this.resolveEnded();
    this.waiter?.();
  }
}
