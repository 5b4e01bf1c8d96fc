import type { StreamPosition } from '../broker/broker.js';

/** What a client asks to catch up on: per-stream positions, and/or everything since a time. */
export interface HistoryRequest {
  /** Unix seconds; null when not given. */
  readonly since: number | null;
  readonly streams: ReadonlyMap<string, StreamPosition>;
}

/**
 * Reads `{"since":<unix s>,"streams":{"<stream>":{"epoch":"…","offset":N}}}` from unknown input.
 * Malformed parts are left out (a bad position can only mean "no position"); null when the value is
 * not an object at all.
 */
export function parseHistoryRequest(value: unknown): HistoryRequest | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const { since, streams } = value as Record<string, unknown>;
  const positions = new Map<string, StreamPosition>();
  if (typeof streams === 'object' && streams !== null && !Array.isArray(streams)) {
    for (const [stream, raw] of Object.entries(streams as Record<string, unknown>)) {
      if (typeof raw !== 'object' || raw === null) continue;
      const { epoch, offset } = raw as Record<string, unknown>;
      if (typeof epoch !== 'string' || epoch === '' || typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) continue;
      positions.set(stream, { epoch, offset });
    }
  }
  const validSince = typeof since === 'number' && Number.isFinite(since) && since >= 0 ? Math.floor(since) : null;
  return { since: validSince, streams: positions };
}
