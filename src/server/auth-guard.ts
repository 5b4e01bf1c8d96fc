import type { HttpRequest } from 'uWebSockets.js';
import { bearerToken, safeEqual } from '../auth/keys.js';

/** Checks `Authorization: Bearer <key>` against any of `keys`; no keys means the endpoint is open. */
export function hasValidBearer(req: HttpRequest, keys: readonly string[]): boolean {
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
