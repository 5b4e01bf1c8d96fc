/** Client frames enter as bytes and leave as a discriminated union; anything else is a DecodeError value. */
export type ClientCommand =
  | { readonly command: 'subscribe'; readonly identifier: string }
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
  if (command !== 'subscribe' && command !== 'unsubscribe' && command !== 'message' && command !== 'whisper') {
    return fail('unknown_command', `unknown command ${JSON.stringify(command ?? null).slice(0, 40)}`);
  }
  const identifier = frame.identifier;
  if (typeof identifier !== 'string' || identifier.length === 0) return fail('bad_identifier', 'identifier must be a non-empty string');
  if (command === 'message') {
    if (typeof frame.data !== 'string') return fail('bad_data', 'message data must be a string');
    return { ok: true, value: { command, identifier, data: frame.data } };
  }
  if (command === 'whisper') return { ok: true, value: { command, identifier, data: frame.data } };
  return { ok: true, value: { command, identifier } };
}
