/**
 * Action Cable frames as Server-Sent Events (anycable-go's encoding): `event: <type>` for protocol
 * messages, `data:` lines, `id: <offset>/<epoch>/<stream>` when the message has a position, and a
 * year-long `retry:` on a disconnect that says not to reconnect. An event ends with a blank line.
 */

/** `retry:` for reconnect:false: a year, so EventSource effectively stops (anycable-go's value). */
export const RETRY_NO_RECONNECT_MS = 31_536_000_000;

/** Separator of the parts of a Last-Event-ID. */
export const EVENT_ID_SEPARATOR = '/';

interface FrameFields {
  readonly type?: unknown;
  readonly message?: unknown;
  readonly reconnect?: unknown;
  readonly stream_id?: unknown;
  readonly epoch?: unknown;
  readonly offset?: unknown;
}

/**
 * One frame (JSON text as the WebSocket transport would send it) as an SSE event. `unwrap`: data
 * messages carry just their `message` (a string as is, anything else as JSON); protocol messages
 * (welcome, ping, confirm_subscription, disconnect…) always carry the whole frame.
 */
export function encodeEvent(frame: string, unwrap: boolean): string {
  let fields: FrameFields;
  try {
    const parsed: unknown = JSON.parse(frame);
    fields = typeof parsed === 'object' && parsed !== null ? (parsed as FrameFields) : {};
  } catch {
    fields = {};
  }
  const type = typeof fields.type === 'string' && fields.type !== '' ? fields.type : '';
  let event = type === '' ? '' : `event: ${type}\n`;
  const data = unwrap && type === '' && 'message' in fields
    ? (typeof fields.message === 'string' ? fields.message : JSON.stringify(fields.message ?? null))
    : frame;
  event += dataLines(data);
  const { offset, epoch, stream_id: stream } = fields;
  if (typeof offset === 'number' && offset > 0 && typeof epoch === 'string' && epoch !== '' && typeof stream === 'string' && stream !== '') {
    event += `id: ${offset}${EVENT_ID_SEPARATOR}${epoch}${EVENT_ID_SEPARATOR}${stream}\n`;
  }
  if (type === 'disconnect' && fields.reconnect === false) event += `retry: ${RETRY_NO_RECONNECT_MS}\n`;
  return event + '\n';
}

/**
 * `data:` lines: a value with line breaks (a Turbo Stream's HTML) takes one line per line, which
 * EventSource joins back with \n; a bare CR or CRLF would otherwise end the field early.
 */
function dataLines(data: string): string {
  if (!/[\r\n]/.test(data)) return `data: ${data}\n`;
  return data.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join('');
}

/** A position from a Last-Event-ID header (`<offset>/<epoch>/<stream>`; the stream may contain '/'). */
export interface EventIdPosition {
  readonly stream: string;
  readonly epoch: string;
  readonly offset: number;
}

/** Null when the header is absent or not of that form (the client then starts fresh). */
export function parseLastEventId(header: string): EventIdPosition | null {
  const first = header.indexOf(EVENT_ID_SEPARATOR);
  const second = first === -1 ? -1 : header.indexOf(EVENT_ID_SEPARATOR, first + 1);
  if (second === -1) return null;
  const offsetText = header.slice(0, first);
  const epoch = header.slice(first + 1, second);
  const stream = header.slice(second + 1);
  if (!/^\d{1,15}$/.test(offsetText) || epoch === '' || stream === '') return null;
  return { stream, epoch, offset: Number(offsetText) };
}
