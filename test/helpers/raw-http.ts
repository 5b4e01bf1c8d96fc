import { connect } from 'node:net';

export interface RawAnswer {
  /** The status line, e.g. 'HTTP/1.1 201 Created'. */
  readonly statusLine: string;
  readonly status: number;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * Sends `request` byte for byte on a fresh TCP connection and reads one answer (status, headers, and a
 * Content-Length body unless `head`). Rejects when nothing complete arrives within `timeoutMs`.
 */
export function rawHttp(port: number, request: string, opts: { head?: boolean; timeoutMs?: number } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error(`no complete answer within ${opts.timeoutMs ?? 3000} ms; got ${JSON.stringify(data.toString('latin1'))}`)), opts.timeoutMs ?? 3000);
    let done = false;
    const finish = (err: Error | null, answer?: RawAnswer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else if (answer) resolve(answer);
    };
    const tryParse = (ended: boolean): void => {
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) {
        if (ended) finish(new Error(`connection closed before an answer; got ${JSON.stringify(text)}`));
        return;
      }
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const bodyBytes = data.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
      const length = opts.head ? 0 : headers['content-length'] !== undefined ? Number(headers['content-length']) : ended ? bodyBytes.length : Infinity;
      if (bodyBytes.length < length) {
        if (ended) finish(new Error(`connection closed mid-body; got ${JSON.stringify(text)}`));
        return;
      }
      finish(null, { statusLine, status: Number(statusLine.split(' ')[1]), headers, body: bodyBytes.subarray(0, length).toString('utf8') });
    };
    socket.on('data', (chunk: Buffer) => { data = Buffer.concat([data, chunk]); tryParse(false); });
    socket.on('end', () => tryParse(true));
    socket.on('error', (err) => finish(err));
  });
}

export type RequestForm = 'origin-form' | 'absolute-form' | 'HTTP/1.0' | 'no Host';
export const REQUEST_FORMS: readonly RequestForm[] = ['origin-form', 'absolute-form', 'HTTP/1.0', 'no Host'];

/** A request in one of the forms clients send; `Connection: close` keeps each exchange on its own connection. */
export function requestText(form: RequestForm, port: number, method: string, path: string, headers: Readonly<Record<string, string>> = {}, body = ''): string {
  const target = form === 'absolute-form' ? `http://127.0.0.1:${port}${path}` : path;
  const version = form === 'HTTP/1.0' ? 'HTTP/1.0' : 'HTTP/1.1';
  const all: Record<string, string> = { ...(form === 'no Host' || form === 'HTTP/1.0' ? {} : { Host: `127.0.0.1:${port}` }), ...headers };
  if (body !== '' || method === 'POST') all['Content-Length'] = String(Buffer.byteLength(body));
  if (version === 'HTTP/1.1') all.Connection = 'close';
  const head = Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `${method} ${target} ${version}\r\n${head}\r\n${body}`;
}
