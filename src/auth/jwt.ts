import { createSecretKey, type KeyObject } from 'node:crypto';
import { jwtVerify, SignJWT, errors as joseErrors } from 'jose';

export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
/** Longer tokens are refused before any crypto: no legitimate identifiers need more. */
export const MAX_TOKEN_LENGTH = 8192;

export type JwtVerdict =
  | { readonly ok: true; readonly identifiers: string }
  | { readonly ok: false; readonly reason: 'token_expired' | 'unauthorized'; readonly detail: string };

/**
 * Verifies HS256/384/512 tokens against one or more secrets (rotation: any may verify).
 * Keys are imported once as KeyObjects: jose 5 verifies those in ~16 µs, far below WebCrypto import per call.
 */
export class JwtVerifier {
  private readonly keys: readonly KeyObject[];

  constructor(secrets: readonly string[]) {
    this.keys = secrets.map((s) => createSecretKey(Buffer.from(s, 'utf8')));
  }

  get enabled(): boolean {
    return this.keys.length > 0;
  }

  async verify(token: string): Promise<JwtVerdict> {
    if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: 'unauthorized', detail: 'token too long' };
    let lastDetail = 'no key';
    for (const key of this.keys) {
      try {
        const { payload } = await jwtVerify(token, key, { algorithms: JWT_ALGORITHMS });
        if (typeof payload.ext !== 'string') return { ok: false, reason: 'unauthorized', detail: 'ext claim missing or not a string' };
        return { ok: true, identifiers: payload.ext };
      } catch (err) {
        // The signature is checked before the claims, so "expired" means a genuine token.
        if (err instanceof joseErrors.JWTExpired) return { ok: false, reason: 'token_expired', detail: 'token expired' };
        if (err instanceof joseErrors.JWSSignatureVerificationFailed) { lastDetail = 'bad signature'; continue; }
        if (err instanceof joseErrors.JWTClaimValidationFailed) return { ok: false, reason: 'unauthorized', detail: `claim ${err.claim} invalid` };
        if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
          return { ok: false, reason: 'unauthorized', detail: 'algorithm not allowed' };
        }
        return { ok: false, reason: 'unauthorized', detail: 'malformed token' };
      }
    }
    return { ok: false, reason: 'unauthorized', detail: lastDetail };
  }
}

/** Mints a token the WebSocket endpoint accepts: `ext` = identifiers JSON, `exp` = now + ttl. */
export async function mintToken(secret: string, identifiers: string, ttlSeconds: number): Promise<string> {
  return new SignJWT({ ext: identifiers })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(createSecretKey(Buffer.from(secret, 'utf8')));
}
