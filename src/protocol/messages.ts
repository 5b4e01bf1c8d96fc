/** Wire-level constants of the Action Cable protocol as AnyCable speaks it. */
export const PROTOCOL_JSON = 'actioncable-v1-json';
export const PROTOCOL_EXT_JSON = 'actioncable-v1-ext-json';
export const SUPPORTED_PROTOCOLS = [PROTOCOL_JSON, PROTOCOL_EXT_JSON] as const;
export type SupportedProtocol = (typeof SUPPORTED_PROTOCOLS)[number];
export const TOKEN_SUBPROTOCOL_PREFIX = 'anycable-token.';

/** Close codes the server sends. 1006 is reserved and never sent. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_INTERNAL_ERROR = 1011;
/** Commands waiting for RPC went over --max_command_queue_size: the server is behind, come back later. */
export const CLOSE_TRY_AGAIN_LATER = 1013;
export const COMMAND_QUEUE_FULL_REASON = 'Command queue full';

export type DisconnectReason = 'server_restart' | 'remote' | 'unauthorized' | 'token_expired' | 'too_slow' | 'no_pong';

export function disconnectFrame(reason: DisconnectReason, reconnect: boolean): string {
  return `{"type":"disconnect","reason":"${reason}","reconnect":${reconnect}}`;
}

/** Built from fixed parts (one per connect): the same text as JSON.stringify({ type, sid }). */
export function welcomeFrame(sid: string): string {
  return `{"type":"welcome","sid":${JSON.stringify(sid)}}`;
}

export function confirmFrame(identifier: string): string {
  return JSON.stringify({ identifier, type: 'confirm_subscription' });
}

export function rejectFrame(identifier: string): string {
  return JSON.stringify({ identifier, type: 'reject_subscription' });
}

export const PONG_FRAME = '{"type":"pong"}';

export function pingFrame(unixSeconds: number): string {
  return `{"type":"ping","message":${unixSeconds}}`;
}

/** `{"identifier":…,"message":<messageJson>}` where messageJson is already valid JSON text. */
export function messageFramePrefix(identifier: string): string {
  return `{"identifier":${JSON.stringify(identifier)},"message":`;
}

/**
 * A broadcast's `data` is JSON text decoded once: valid JSON is relayed as is (so a JSON string
 * literal stays a string), anything else is sent as a string.
 */
export function messageJsonFromData(data: string): string {
  try {
    JSON.parse(data);
    return data;
  } catch {
    return JSON.stringify(data);
  }
}
