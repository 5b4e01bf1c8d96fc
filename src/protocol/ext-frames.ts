/** Frames of the extended protocol (actioncable-v1-ext-json) and of reliable streams. */
import type { StreamPosition } from '../broker/broker.js';
import { messageJsonFromData } from './messages.js';

/** `,"stream_id":…,"epoch":…,"offset":N}`: what closes a data frame whose message has a position. */
export function positionSuffix(stream: string, position: StreamPosition): string {
  return `,"stream_id":${JSON.stringify(stream)},"epoch":${JSON.stringify(position.epoch)},"offset":${position.offset}}`;
}

/**
 * Stored messages known to be valid JSON. History replays the same few hundred entries to every
 * returning client: each is checked (parsed) once, not once per client. Bounded in characters (it
 * holds the texts): cleared when full; large messages are checked each time.
 */
const checkedStoredData = new Set<string>();
let checkedStoredChars = 0;
const CHECKED_STORED_CHARS_LIMIT = 4 * 1024 * 1024;
const CHECKED_STORED_ENTRY_LIMIT = 16 * 1024;

/** A stored message as JSON text: entries come from the broker, maybe written by another server, so they are checked once. */
function storedMessageJson(data: string): string {
  if (checkedStoredData.has(data)) return data;
  const json = messageJsonFromData(data);
  if (json === data && data.length <= CHECKED_STORED_ENTRY_LIMIT) {
    if (checkedStoredChars + data.length > CHECKED_STORED_CHARS_LIMIT) {
      checkedStoredData.clear();
      checkedStoredChars = 0;
    }
    checkedStoredData.add(data);
    checkedStoredChars += data.length;
  }
  return json;
}

/** `{"identifier":…,"message":…,"stream_id":…,"epoch":…,"offset":N}` (anycable-go's key order). */
export function positionedMessageFrame(identifier: string, stream: string, data: string, position: StreamPosition): string {
  return `{"identifier":${JSON.stringify(identifier)},"message":${storedMessageJson(data)}${positionSuffix(stream, position)}`;
}

export function confirmHistoryFrame(identifier: string): string {
  return JSON.stringify({ type: 'confirm_history', identifier });
}

export function rejectHistoryFrame(identifier: string): string {
  return JSON.stringify({ type: 'reject_history', identifier });
}

/** The welcome of a restored session: a new sid, and which subscriptions came back. */
export function restoredWelcomeFrame(sid: string, restoredIds: readonly string[]): string {
  return JSON.stringify({ type: 'welcome', sid, restored: true, restored_ids: restoredIds });
}

/** The answer to presence commands while no presence store exists: the client rejects its request. */
export function presenceErrorFrame(identifier: string): string {
  return JSON.stringify({ type: 'presence', identifier, message: { type: 'error', total: 0 } });
}

export type PingPrecision = 's' | 'ms' | 'ns';

/** `?ptp=`: the unit of ping timestamps for this connection. */
export function parsePingPrecision(value: string | null): PingPrecision {
  return value === 'ms' || value === 'ns' ? value : 's';
}

export function pingTimestamp(nowMs: number, precision: PingPrecision): string {
  if (precision === 'ms') return String(nowMs);
  // Nanoseconds overflow a double's exact range: build the digits as text.
  if (precision === 'ns') return `${nowMs}000000`;
  return String(Math.floor(nowMs / 1000));
}
