import { bearerToken, safeEqual } from '../auth/keys.js';

/** Checks `Authorization: Bearer <key>` against any of `keys`; no keys means the endpoint is open. */
/** `req` is a uWS request or a transport-neutral request view: only its headers are read. */
export function hasValidBearer(req: { getHeader(lowerCaseName: string): string }, keys: readonly string[]): boolean {
  const active = keys.filter((k) => k !== '');
  if (active.length === 0) return true;
  const given = bearerToken(req.getHeader('authorization'));
  if (given === '') return false;
  // Compare against every key so timing does not reveal which one matched.
  let ok = false;
  for (const key of active) ok = safeEqual(given, key) || ok;
  return ok;
}

export const INVALID_CREDENTIALS = { error: 'invalid_credentials' } as const;
