import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';

export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
/** Longer tokens are refused before any crypto: no legitimate identifiers need more. */
export const MAX_TOKEN_LENGTH = 8192;

export type JwtVerdict =
  | { readonly ok: true; readonly identifiers: string }
  | { readonly ok: false; readonly reason: 'token_expired' | 'unauthorized'; readonly detail: string };

/** JWS `alg` → node:crypto HMAC digest. */
const HMAC_DIGESTS: ReadonlyMap<string, string> = new Map([['HS256', 'sha256'], ['HS384', 'sha384'], ['HS512', 'sha512']]);
/** Distinct protected headers remembered (clients of one app send one or two); bounded because tokens are input. */
const HEADER_CACHE_SIZE = 16;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

type HeaderVerdict = { readonly ok: true; readonly digest: string } | { readonly ok: false; readonly detail: string };

const refused = (detail: string): JwtVerdict => ({ ok: false, reason: 'unauthorized', detail });
const MALFORMED = refused('malformed token');

/**
 * Verifies HS256/384/512 compact JWTs against one or more secrets (rotation: any may verify), synchronously,
 * with node:crypto HMAC over pre-imported keys: ~6–9 µs against ~40 µs through jose's generic path, which
 * matters because every JWT connection pays it. The rules are jose's `jwtVerify` with
 * `algorithms: HS256/384/512` (its tests sign with jose): the header is checked first (JSON object, `alg`
 * allowed, no `crit` extensions), then the signature (constant-time, canonical base64url only), then the
 * claims (`exp`/`nbf`/`iat` numbers; expired when `exp <= now`, not yet valid when `nbf > now`).
 */
export class JwtVerifier {
  private readonly keys: readonly KeyObject[];
  private readonly headers = new Map<string, HeaderVerdict>();

  constructor(secrets: readonly string[]) {
    this.keys = secrets.map((s) => createSecretKey(Buffer.from(s, 'utf8')));
  }

  get enabled(): boolean {
    return this.keys.length > 0;
  }

  verify(token: string): JwtVerdict {
    if (token.length > MAX_TOKEN_LENGTH) return refused('token too long');
    if (this.keys.length === 0) return refused('no key');
    const firstDot = token.indexOf('.');
    const lastDot = token.lastIndexOf('.');
    if (firstDot <= 0 || lastDot === firstDot || token.indexOf('.', firstDot + 1) !== lastDot) return MALFORMED;

    const header = this.header(token.slice(0, firstDot));
    if (!header.ok) return refused(header.detail);

    const signature = token.slice(lastDot + 1);
    if (!BASE64URL.test(signature)) return MALFORMED;
    const signingInput = token.slice(0, lastDot);
    const given = Buffer.from(signature, 'latin1');
    let signed = false;
    for (const key of this.keys) {
      // Compared as canonical base64url text: only the exact encoding of the right MAC matches.
      const expected = Buffer.from(createHmac(header.digest, key).update(signingInput).digest('base64url'), 'latin1');
      if (expected.length === given.length && timingSafeEqual(expected, given)) {
        signed = true;
        break;
      }
    }
    if (!signed) return refused('bad signature');
    return claims(token.slice(firstDot + 1, lastDot));
  }

  private header(segment: string): HeaderVerdict {
    let verdict = this.headers.get(segment);
    if (verdict !== undefined) return verdict;
    verdict = readHeader(segment);
    if (this.headers.size >= HEADER_CACHE_SIZE) this.headers.clear();
    this.headers.set(segment, verdict);
    return verdict;
  }
}

function readHeader(segment: string): HeaderVerdict {
  const header = parseSegment(segment);
  if (header === null) return { ok: false, detail: 'malformed token' };
  const alg = header.alg;
  if (typeof alg !== 'string' || alg === '') return { ok: false, detail: 'malformed token' };
  // No JWS extensions are understood, so a token that marks any as critical cannot be verified.
  if (header.crit !== undefined) return { ok: false, detail: 'malformed token' };
  const digest = HMAC_DIGESTS.get(alg);
  return digest === undefined ? { ok: false, detail: 'algorithm not allowed' } : { ok: true, digest };
}

function claims(segment: string): JwtVerdict {
  const payload = parseSegment(segment);
  if (payload === null) return MALFORMED;
  const now = Math.floor(Date.now() / 1000);
  const { iat, nbf, exp, ext } = payload;
  if (iat !== undefined && typeof iat !== 'number') return refused('claim iat invalid');
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now)) return refused('claim nbf invalid');
  if (exp !== undefined) {
    if (typeof exp !== 'number') return refused('claim exp invalid');
    // The signature was checked first, so "expired" is only ever said of a genuine token.
    if (exp <= now) return { ok: false, reason: 'token_expired', detail: 'token expired' };
  }
  if (typeof ext !== 'string') return refused('ext claim missing or not a string');
  return { ok: true, identifiers: ext };
}

/** A base64url segment holding a JSON object, or null. */
function parseSegment(segment: string): Record<string, unknown> | null {
  if (!BASE64URL.test(segment)) return null;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** Mints a token the WebSocket endpoint accepts: `ext` = identifiers JSON, `exp` = now + ttl. */
export async function mintToken(secret: string, identifiers: string, ttlSeconds: number): Promise<string> {
  return new SignJWT({ ext: identifiers })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(createSecretKey(Buffer.from(secret, 'utf8')));
}
