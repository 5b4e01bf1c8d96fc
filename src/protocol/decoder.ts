import { parseHistoryRequest, type HistoryRequest } from '../reliable/history-request.js';
import { parseJoinRequest, type JoinRequest } from '../presence/join-request.js';

/** Client frames enter as bytes and leave as a discriminated union; anything else is a DecodeError value. */
export type ClientCommand =
  /** ext-json: `presence` joins once the subscription is confirmed (a client restoring its presence). */
  | { readonly command: 'subscribe'; readonly identifier: string; readonly history?: HistoryRequest; readonly presence?: JoinRequest }
  /** `history` null: absent or malformed, answered with reject_history. */
  | { readonly command: 'history'; readonly identifier: string; readonly history: HistoryRequest | null }
  | { readonly command: 'join'; readonly identifier: string; readonly presence: JoinRequest }
  | { readonly command: 'presence' | 'leave'; readonly identifier: string }
  | { readonly command: 'unsubscribe'; readonly identifier: string }
  | { readonly command: 'message'; readonly identifier: string; readonly data: string }
  | { readonly command: 'whisper'; readonly identifier: string; readonly data: unknown }
  | { readonly command: 'ping' }
  | { readonly command: 'pong' };

export interface DecodeError {
  readonly error: 'not_json' | 'not_object' | 'unknown_command' | 'bad_identifier' | 'bad_data' | 'binary_frame';
  readonly detail: string;
}

export type DecodeResult = { readonly ok: true; readonly value: ClientCommand } | { readonly ok: false; readonly value: DecodeError };

const fail = (error: DecodeError['error'], detail: string): DecodeResult => ({ ok: false, value: { error, detail } });

const CHANNEL_COMMANDS = new Set<unknown>(['subscribe', 'unsubscribe', 'message', 'whisper', 'history', 'presence', 'join', 'leave']);

export function decodeClientFrame(text: string): DecodeResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return fail('not_json', 'frame is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('not_object', 'frame is not a JSON object');
  const frame = parsed as Record<string, unknown>;
  const command = frame.command;
  if (command === 'ping' || command === 'pong') return { ok: true, value: { command } };
  if (!CHANNEL_COMMANDS.has(command)) {
    return fail('unknown_command', `unknown command ${JSON.stringify(command ?? null).slice(0, 40)}`);
  }
  const identifier = frame.identifier;
  if (typeof identifier !== 'string' || identifier.length === 0) return fail('bad_identifier', 'identifier must be a non-empty string');
  if (command === 'message') {
    if (typeof frame.data !== 'string') return fail('bad_data', 'message data must be a string');
    return { ok: true, value: { command, identifier, data: frame.data } };
  }
  if (command === 'whisper') return { ok: true, value: { command, identifier, data: frame.data } };
  if (command === 'history') return { ok: true, value: { command, identifier, history: parseHistoryRequest(frame.history) } };
  if (command === 'join') {
    const presence = parseJoinRequest(frame.presence);
    if (presence === null) return fail('bad_data', 'join needs presence {id: non-empty string or number, info}');
    return { ok: true, value: { command, identifier, presence } };
  }
  if (command === 'subscribe' && (frame.history !== undefined || frame.presence !== undefined)) {
    const history = frame.history === undefined ? null : parseHistoryRequest(frame.history);
    // A malformed presence in a subscribe is ignored: the subscription itself is fine.
    const presence = frame.presence === undefined ? null : parseJoinRequest(frame.presence);
    return { ok: true, value: { command, identifier, ...(history ? { history } : {}), ...(presence ? { presence } : {}) } };
  }
  if (command === 'presence' || command === 'leave') return { ok: true, value: { command, identifier } };
  return { ok: true, value: { command: command as 'subscribe' | 'unsubscribe', identifier } };
}
