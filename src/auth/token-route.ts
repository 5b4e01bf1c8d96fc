import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { HttpRoute } from '../server/http-server.js';
import { hasValidBearer, INVALID_CREDENTIALS } from '../server/auth-guard.js';
import { mintToken } from './jwt.js';
import { verifyPassword } from './users.js';
import { AttemptThrottle, BUSY, DEFAULT_THROTTLE, WorkGate, type ThrottleOptions } from './login-guard.js';
import { RateLimitedLog } from '../logging/rate-limited.js';

export interface TokenRouteOptions {
  readonly apiKey: string;
  readonly signingSecret: string;
  readonly defaultTtlS: number;
  /** username → scrypt hash; null without --users_file: then the password path does not exist. */
  readonly users: ReadonlyMap<string, string> | null;
  /** Tests shorten these; production uses the defaults. */
  readonly throttle?: ThrottleOptions;
}

const MAX_TTL_S = 30 * 24 * 3600;
/** scrypt checks in flight at once: libuv has 4 threads by default, DNS and files need some too. */
const SCRYPT_IN_FLIGHT = 2;
/** Checks that may wait for a slot; past it the answer is 503 at once (memory stays bounded). */
const SCRYPT_WAITING = 32;

/**
 * POST /auth/token. With the API key: `{"identifiers":{…},"ttl":s}` → a token for those identifiers.
 * With `{"username","password"}` from --users_file: a token for {"user_id":<username>}; throttled per
 * address (429 + Retry-After), scrypt capped globally (503 when too many wait); no users file: 422 at once.
 */
export function tokenRoute(opts: TokenRouteOptions, metrics: Metrics, logger: Logger): HttpRoute {
  const log = logger.child({ component: 'token' });
  const refused = (): void => { metrics.counters.token_requests_refused_total++; };
  const quiet = new RateLimitedLog(log);
  const throttle = new AttemptThrottle(opts.throttle ?? DEFAULT_THROTTLE);
  const scryptGate = new WorkGate(SCRYPT_IN_FLIGHT, SCRYPT_WAITING);
  const users = opts.users;
  return {
    method: 'post',
    pattern: '/auth/token',
    handle: async (reply, req) => {
      const keyOk = hasValidBearer(req, [opts.apiKey]);
      const address = req.remoteAddress;
      const body = await req.readBody(16 * 1024);
      if (!body.ok) {
        if (body.reason === 'too_large') reply.json('413 Payload Too Large', { error: 'payload_too_large' }, true);
        return;
      }
      let input: Record<string, unknown>;
      try {
        const parsed: unknown = JSON.parse(body.body.toString('utf8'));
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
        input = parsed as Record<string, unknown>;
      } catch {
        return reply.json('422 Unprocessable Entity', { error: 'invalid_payload', detail: 'body must be a JSON object' });
      }
      const ttl = input.ttl === undefined ? opts.defaultTtlS : input.ttl;
      if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl <= 0 || ttl > MAX_TTL_S) {
        return reply.json('422 Unprocessable Entity', { error: 'invalid_payload', detail: `ttl must be an integer from 1 to ${MAX_TTL_S}` });
      }
      let identifiers: string;
      if (typeof input.username === 'string' && typeof input.password === 'string') {
        if (users === null) {
          refused();
          log.info({ remote: address }, 'token refused: password login is off (no --users_file)');
          return reply.json('422 Unprocessable Entity', { error: 'invalid_payload', detail: 'password login is off (no --users_file): send identifiers with the API key' });
        }
        const waitS = throttle.take(address);
        if (waitS > 0) {
          refused();
          quiet.warn('throttled', { remote: address, retry_after_s: waitS }, 'token refused: too many login attempts from this address');
          return reply.send('429 Too Many Requests', JSON.stringify({ error: 'too_many_requests', retry_after: waitS }),
            { 'Content-Type': 'application/json', 'Retry-After': String(waitS) });
        }
        const { username, password } = input;
        const ok = await scryptGate.run(() => verifyPassword(password, users.get(username)));
        if (ok === BUSY) {
          refused();
          quiet.warn('busy', { remote: address }, 'token refused: too many password checks in flight');
          return reply.send('503 Service Unavailable', JSON.stringify({ error: 'busy', retry_after: 1 }),
            { 'Content-Type': 'application/json', 'Retry-After': '1' });
        }
        if (!ok) {
          refused();
          log.info({ remote: address }, 'token refused: invalid credentials');
          return reply.json('401 Unauthorized', INVALID_CREDENTIALS);
        }
        identifiers = JSON.stringify({ user_id: username });
      } else {
        if (!keyOk) {
          refused();
          log.info({ remote: address }, 'token refused: invalid credentials');
          return reply.json('401 Unauthorized', INVALID_CREDENTIALS);
        }
        if (typeof input.identifiers !== 'object' || input.identifiers === null || Array.isArray(input.identifiers)) {
          return reply.json('422 Unprocessable Entity', { error: 'invalid_payload', detail: 'identifiers must be an object' });
        }
        identifiers = JSON.stringify(input.identifiers);
      }
      const token = await mintToken(opts.signingSecret, identifiers, ttl);
      reply.json('200 OK', { access_token: token, token_type: 'Bearer', expires_in: ttl });
    },
  };
}
