import { PUBSUB_CHANNEL, TURBO_CHANNEL } from '../streams/streams-controller.js';
import { parseLastEventId, type EventIdPosition } from './sse-encoder.js';

/** A POST body bigger than this is refused with 413 (anycable-go's limit). */
export const MAX_POST_BODY_BYTES = 64 * 1024;

/** Why a request gets no stream; the endpoint turns it into an HTTP status and a JSON error. */
export type SseRequestError =
  | { readonly status: '400 Bad Request'; readonly error: 'no_channel' | 'bad_history_since' | 'bad_command'; readonly detail: string }
  | { readonly status: '413 Payload Too Large'; readonly error: 'body_too_large'; readonly detail: string };

/** The client frames an SSE request stands for: subscribe commands, as the WebSocket transport would receive them. */
export type SseCommands = { readonly ok: true; readonly frames: readonly SubscribeFrame[] } | { readonly ok: false; readonly error: SseRequestError };

export interface SubscribeFrame {
  readonly identifier: string;
  /** JSON text of the subscribe command, history request included. */
  readonly text: string;
}

interface HistoryPart {
  since?: number;
  streams?: Record<string, { epoch: string; offset: number }>;
}

const badRequest = (error: 'no_channel' | 'bad_history_since' | 'bad_command', detail: string): SseCommands =>
  ({ ok: false, error: { status: '400 Bad Request', error, detail } });

/** The history part of every subscribe: `history_since` (Unix seconds) and the Last-Event-ID position. */
function historyPart(since: number | null, lastEventId: EventIdPosition | null): HistoryPart | null {
  if (since === null && lastEventId === null) return null;
  const history: HistoryPart = {};
  if (since !== null) history.since = since;
  if (lastEventId !== null) history.streams = { [lastEventId.stream]: { epoch: lastEventId.epoch, offset: lastEventId.offset } };
  return history;
}

function subscribeFrame(identifier: string, history: HistoryPart | null): SubscribeFrame {
  const command: Record<string, unknown> = { command: 'subscribe', identifier };
  if (history !== null) command.history = history;
  return { identifier, text: JSON.stringify(command) };
}

/** The identifier a GET names: `identifier`, else `channel`, else one of the stream params (anycable-go's order). */
function identifierFromQuery(query: URLSearchParams): string | null {
  const identifier = query.get('identifier');
  if (identifier) return identifier;
  const channel = query.get('channel');
  if (channel) return JSON.stringify({ channel });
  const stream = query.get('stream');
  if (stream) return JSON.stringify({ channel: PUBSUB_CHANNEL, stream_name: stream });
  const signed = query.get('signed_stream');
  if (signed) return JSON.stringify({ channel: PUBSUB_CHANNEL, signed_stream_name: signed });
  const turbo = query.get('turbo_signed_stream_name');
  if (turbo) return JSON.stringify({ channel: TURBO_CHANNEL, signed_stream_name: turbo });
  return null;
}

function parseSince(query: URLSearchParams): number | null | 'bad' {
  const since = query.get('history_since');
  if (since === null || since === '') return null;
  return /^\d{1,15}$/.test(since) ? Number(since) : 'bad';
}

/** GET: one subscription from the query string; the `Last-Event-ID` header resumes it. */
export function commandsFromQuery(query: URLSearchParams, lastEventIdHeader: string): SseCommands {
  const identifier = identifierFromQuery(query);
  if (identifier === null) return badRequest('no_channel', 'name a channel: identifier, channel, stream, signed_stream or turbo_signed_stream_name');
  const since = parseSince(query);
  if (since === 'bad') return badRequest('bad_history_since', 'history_since must be Unix seconds');
  return { ok: true, frames: [subscribeFrame(identifier, historyPart(since, parseLastEventId(lastEventIdHeader)))] };
}

/**
 * POST: a JSONL body, one subscribe command per line (blank lines skipped). Each keeps its own
 * `history`; `history_since` and Last-Event-ID fill in where a command has none.
 */
export function commandsFromBody(body: string, query: URLSearchParams, lastEventIdHeader: string): SseCommands {
  const since = parseSince(query);
  if (since === 'bad') return badRequest('bad_history_since', 'history_since must be Unix seconds');
  const shared = historyPart(since, parseLastEventId(lastEventIdHeader));
  const frames: SubscribeFrame[] = [];
  const seen = new Set<string>();
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return badRequest('bad_command', `line ${i + 1} is not JSON`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return badRequest('bad_command', `line ${i + 1} is not a JSON object`);
    const { command, identifier, history } = parsed as Record<string, unknown>;
    if (command !== 'subscribe') return badRequest('bad_command', `line ${i + 1}: only subscribe commands open a stream`);
    if (typeof identifier !== 'string' || identifier === '') return badRequest('bad_command', `line ${i + 1}: identifier must be a non-empty string`);
    // A second subscribe to the same channel would be dropped and never answered.
    if (seen.has(identifier)) continue;
    seen.add(identifier);
    const own = typeof history === 'object' && history !== null ? (history as HistoryPart) : null;
    frames.push(subscribeFrame(identifier, own ?? shared));
  }
  if (frames.length === 0) return badRequest('no_channel', 'the body has no subscribe command');
  return { ok: true, frames };
}
