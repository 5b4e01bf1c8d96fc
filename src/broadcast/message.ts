import type { StreamPosition } from '../broker/broker.js';
import { messageJsonFromData } from '../protocol/messages.js';

/** What the app publishes, parsed from unknown input into one of two shapes. */
export interface StreamBroadcast {
  readonly kind: 'broadcast';
  readonly stream: string;
  /**
   * The `message` relayed to subscribers, as valid JSON text: the parser decides once per node
   * (valid JSON as is, anything else as a JSON string), so fan-out never parses it again.
   */
  readonly data: string;
  /** `meta.exclude_socket`: the sid that must not receive it. */
  readonly excludeSocket: string | null;
  /** `meta.transient`: delivered live but never stored in history (whispers are). */
  readonly transient?: boolean;
  /** `meta.broadcast_type` "presence": a presence event, framed as `{"type":"presence",…}` (always transient). */
  readonly presence?: boolean;
  /** Given by the broker before fan-out; only trusted between our own nodes. */
  readonly position?: StreamPosition;
}

export interface RemoteDisconnect {
  readonly kind: 'disconnect';
  /** The connection identifiers string, compared verbatim. */
  readonly identifier: string;
  readonly reconnect: boolean;
}

export type Publication = StreamBroadcast | RemoteDisconnect;

export type ParseResult = { readonly ok: true; readonly items: readonly Publication[] } | { readonly ok: false; readonly error: string };

function parsePosition(obj: Record<string, unknown>): StreamPosition | undefined {
  const { epoch, offset } = obj;
  if (typeof epoch !== 'string' || epoch === '' || typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 1) return undefined;
  return { epoch, offset };
}

function parseOne(value: unknown, at: string, trusted: boolean): Publication | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${at}: not an object`;
  const obj = value as Record<string, unknown>;
  if (obj.command !== undefined) {
    if (obj.command !== 'disconnect') return `${at}: unknown command`;
    const payload = obj.payload;
    if (typeof payload !== 'object' || payload === null) return `${at}: payload must be an object`;
    const { identifier, reconnect } = payload as Record<string, unknown>;
    if (typeof identifier !== 'string' || identifier === '') return `${at}: payload.identifier must be a non-empty string`;
    if (reconnect !== undefined && typeof reconnect !== 'boolean') return `${at}: payload.reconnect must be a boolean`;
    return { kind: 'disconnect', identifier, reconnect: reconnect ?? true };
  }
  const { stream, data, meta } = obj;
  if (typeof stream !== 'string' || stream === '') return `${at}: stream must be a non-empty string`;
  // anycable-go takes `data` as JSON text; an object is accepted too and encoded once here
  // (already valid JSON: no second parse).
  let text: string;
  // Between our own nodes `data` is already the normalised JSON text: parsed once per broadcast, on the node it entered.
  if (typeof data === 'string') text = trusted ? data : messageJsonFromData(data);
  else if (data !== undefined) text = JSON.stringify(data);
  else return `${at}: data is missing`;
  let excludeSocket: string | null = null;
  let transient = false;
  let presence = false;
  if (meta !== undefined && meta !== null) {
    if (typeof meta !== 'object' || Array.isArray(meta)) return `${at}: meta must be an object`;
    const { exclude_socket: ex, transient: tr, broadcast_type: type } = meta as Record<string, unknown>;
    if (typeof ex === 'string' && ex !== '') excludeSocket = ex;
    presence = type === 'presence';
    transient = tr === true || presence;
  }
  // Optional fields are set only when present (no spreads: this runs once per broadcast per node).
  const pub: Mutable<StreamBroadcast> = { kind: 'broadcast', stream, data: text, excludeSocket };
  if (transient) pub.transient = true;
  if (presence) pub.presence = true;
  const position = trusted ? parsePosition(obj) : undefined;
  if (position) pub.position = position;
  return pub;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * One object or an array of them (a batch). All-or-nothing: one bad entry rejects the payload.
 * `trusted` (our own pub/sub between nodes) also reads stream positions; from the app they are ignored.
 */
export function parsePublications(value: unknown, trusted = false): ParseResult {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) return { ok: false, error: 'empty batch' };
  const items: Publication[] = [];
  for (let i = 0; i < list.length; i++) {
    const parsed = parseOne(list[i], Array.isArray(value) ? `item ${i}` : 'payload', trusted);
    if (typeof parsed === 'string') return { ok: false, error: parsed };
    items.push(parsed);
  }
  return { ok: true, items };
}

export function parsePublicationsText(text: string, trusted = false): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: 'body is not valid JSON' };
  }
  return parsePublications(value, trusted);
}

/** The wire form used between nodes (Redis/NATS pub/sub), stream position included. */
export function encodePublication(pub: Publication): string {
  if (pub.kind === 'disconnect') return JSON.stringify({ command: 'disconnect', payload: { identifier: pub.identifier, reconnect: pub.reconnect } });
  // Built field by field in the wire's key order (stream, data, meta, epoch, offset): no spreads per publication.
  const wire: { stream: string; data: string; meta?: Record<string, string | boolean>; epoch?: string; offset?: number } = { stream: pub.stream, data: pub.data };
  if (pub.excludeSocket || pub.transient || pub.presence) {
    const meta: Record<string, string | boolean> = {};
    if (pub.excludeSocket) meta.exclude_socket = pub.excludeSocket;
    if (pub.transient) meta.transient = true;
    if (pub.presence) meta.broadcast_type = 'presence';
    wire.meta = meta;
  }
  if (pub.position) {
    wire.epoch = pub.position.epoch;
    wire.offset = pub.position.offset;
  }
  return JSON.stringify(wire);
}
