import { bearerToken, safeEqual } from '../auth/keys.js';

/**
 * Who may call an endpoint: 'open' (anyone: only where a flag says so), or bearer keys. A list whose
 * keys are all empty is closed: a missing key never opens an endpoint by accident.
 */
export type KeyPolicy = 'open' | readonly string[];

/**
 * Checks `Authorization: Bearer <key>` against the policy's keys. `req` is a uWS request or a
 * transport-neutral request view: only its headers are read.
 */
export function hasValidBearer(req: { getHeader(lowerCaseName: string): string }, policy: KeyPolicy): boolean {
  if (policy === 'open') return true;
  const active = policy.filter((k) => k !== '');
  if (active.length === 0) return false;
  const given = bearerToken(req.getHeader('authorization'));
  if (given === '') return false;
  // Compare against every key so timing does not reveal which one matched.
  let ok = false;
  for (const key of active) ok = safeEqual(given, key) || ok;
  return ok;
}

export const INVALID_CREDENTIALS = { error: 'invalid_credentials' } as const;

/** The HTTP broadcast endpoint's policy, and what to tell the operator about it at start. */
export function broadcastPolicy(config: { readonly broadcastOpen: boolean; readonly broadcastKey: string; readonly apiKey: string; readonly httpBroadcastPath: string }):
  { readonly policy: KeyPolicy; readonly warning: string | null } {
  if (config.broadcastOpen) {
    return { policy: 'open', warning: `HTTP broadcasts need no key (--public or --broadcast_key=none): anyone who reaches ${config.httpBroadcastPath} can broadcast and disconnect users` };
  }
  const keys = [config.broadcastKey, config.apiKey].filter((k) => k !== '');
  if (keys.length > 0) return { policy: keys, warning: null };
  return { policy: keys, warning: `HTTP broadcasts are refused (401): no broadcast key; set --secret or --broadcast_key, or --broadcast_key=none to accept them without a key` };
}
