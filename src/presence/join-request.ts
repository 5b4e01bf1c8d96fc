/** The `presence` field of a client's join (and of an ext-json subscribe), checked. */
export interface JoinRequest {
  /** The presence id: sessions sharing it count as one member. */
  readonly id: string;
  /** JSON text of the info, '' when none was given. */
  readonly info: string;
}

/** Longest presence id accepted: ids are keys in the store and go out in every event. */
export const MAX_PRESENCE_ID_LENGTH = 256;

/**
 * `{"id":"…","info":…}` → a join request; null when it is not an object or its id is missing,
 * empty, too long or not a string/number (@anycable/core sends String(id); numbers are taken as text).
 */
export function parseJoinRequest(value: unknown): JoinRequest | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const { id, info } = value as Record<string, unknown>;
  let text: string;
  if (typeof id === 'string') text = id;
  else if (typeof id === 'number' && Number.isFinite(id)) text = String(id);
  else return null;
  if (text === '' || text.length > MAX_PRESENCE_ID_LENGTH) return null;
  return { id: text, info: info === undefined ? '' : JSON.stringify(info) };
}
