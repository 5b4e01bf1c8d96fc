import type { Logger } from '../logging/logger.js';
import type { HttpRoute } from '../server/http-server.js';
import { readBody } from '../server/http-io.js';
import { hasValidBearer, INVALID_CREDENTIALS } from '../server/auth-guard.js';
import { mintToken } from './jwt.js';
import { verifyPassword } from './users.js';

export interface TokenRouteOptions {
  readonly apiKey: string;
  readonly signingSecret: string;
  readonly defaultTtlS: number;
  /** username → scrypt hash */
  readonly users: ReadonlyMap<string, string>;
}

const MAX_TTL_S = 30 * 24 * 3600;
const FREE_FAILURES = 5;

/** Failed logins per address: past a few, each answer waits longer (capped), to slow guessing. */
class FailureThrottle {
  private readonly failures = new Map<string, { count: number; at: number }>();

  delayFor(address: string): number {
    const entry = this.failures.get(address);
    if (!entry || Date.now() - entry.at > 15 * 60_000) return 0;
    return entry.count < FREE_FAILURES ? 0 : Math.min(100 * 2 ** (entry.count - FREE_FAILURES), 5000);
  }

  fail(address: string): void {
    const entry = this.failures.get(address);
    this.failures.set(address, { count: (entry?.count ?? 0) + 1, at: Date.now() });
    if (this.failures.size > 10_000) this.failures.clear(); // bounded memory under a spray of addresses
  }

  succeed(address: string): void {
    this.failures.delete(address);
  }
}

/**
 * POST /auth/token. With the API key: `{"identifiers":{…},"ttl":s}` → a token for those identifiers.
 * With `{"username","password"}` from --users_file: a token for {"user_id":<username>}.
 */
export function tokenRoute(opts: TokenRouteOptions, logger: Logger): HttpRoute {
  const log = logger.child({ component: 'token' });
  const throttle = new FailureThrottle();
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  return {
    method: 'post',
    pattern: '/auth/token',
    handle: async (reply, req) => {
      const keyOk = hasValidBearer(req, [opts.apiKey]);
      const address = req.remoteAddress;
      const body = await readBody(reply, req, 16 * 1024);
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
        const delay = throttle.delayFor(address);
        if (delay > 0) await sleep(delay);
        const ok = await verifyPassword(input.password, opts.users.get(input.username));
        if (!ok) {
          throttle.fail(address);
          log.info({ remote: address }, 'token refused: invalid credentials');
          return reply.json('401 Unauthorized', INVALID_CREDENTIALS);
        }
        throttle.succeed(address);
        identifiers = JSON.stringify({ user_id: input.username });
      } else {
        if (!keyOk) {
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
