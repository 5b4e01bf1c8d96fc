import * as crypto from 'node:crypto';
import { createHmac, createSecretKey } from 'node:crypto';
import { SignJWT } from 'jose';

/** Longer tokens are refused before any crypto: no legitimate identifiers need more. */
export const MAX_TOKEN_LENGTH = 8192;

export type JwtVerdict =
  | { readonly ok: true; readonly identifiers: string }
  | { readonly ok: false; readonly reason: 'token_expired' | 'unauthorized'; readonly detail: string };

/** JWS `alg` → node:crypto digest and its block size (HMAC pads the key to one block). */
const HMAC_DIGESTS: ReadonlyMap<string, Digest> = new Map([
  ['HS256', { name: 'sha256', blockBytes: 64 }],
  ['HS384', { name: 'sha384', blockBytes: 128 }],
  ['HS512', { name: 'sha512', blockBytes: 128 }],
]);

interface Digest {
  readonly name: string;
  readonly blockBytes: number;
}

/** node:crypto's one-shot hash (Node >= 20.12): no Hash object, stream or native handle per call. */
type OneShotHash = (algorithm: string, data: Buffer, outputEncoding: 'latin1' | 'base64url') => string;
const oneShotHash = (crypto as unknown as { hash?: OneShotHash }).hash;
/** Distinct protected headers remembered (clients of one app send one or two); bounded because tokens are input. */
const HEADER_CACHE_SIZE = 16;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

type HeaderVerdict = { readonly ok: true; readonly digest: Digest } | { readonly ok: false; readonly detail: string };

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
  private readonly keys: readonly HmacKey[];
  private readonly headers = new Map<string, HeaderVerdict>();
  private lastHeader: { readonly segment: string; readonly verdict: HeaderVerdict } | null = null;

  constructor(secrets: readonly string[]) {
    this.keys = secrets.map((s) => new HmacKey(Buffer.from(s, 'utf8')));
  }

  get enabled(): boolean {
    return this.keys.length > 0;
  }

  verify(token: string): JwtVerdict {
    if (token.length > MAX_TOKEN_LENGTH) return refused('token too long');
    if (this.keys.length === 0) return refused('no key');
    // Exactly two dots, found with indexOf (lastIndexOf is a runtime call in V8, indexOf a fast builtin).
    const firstDot = token.indexOf('.');
    const lastDot = firstDot <= 0 ? -1 : token.indexOf('.', firstDot + 1);
    if (lastDot === -1 || token.indexOf('.', lastDot + 1) !== -1) return MALFORMED;

    const header = this.header(token, firstDot);
    if (!header.ok) return refused(header.detail);

    const signature = token.slice(lastDot + 1);
    const payload = token.slice(firstDot + 1, lastDot);
    // Base64url text only: then the signing input's UTF-8 bytes (what jose MACs) are its Latin-1 bytes.
    if (!BASE64URL.test(signature) || !BASE64URL.test(payload)) return MALFORMED;
    let signed = false;
    for (const key of this.keys) {
      // Compared as canonical base64url text: only the exact encoding of the right MAC matches.
      if (constantTimeEqual(key.mac(header.digest, token, lastDot), signature)) {
        signed = true;
        break;
      }
    }
    if (!signed) return refused('bad signature');
    return claims(payload);
  }

  /** The verdict on the token's header segment (its first `end` characters), cached per distinct header. */
  private header(token: string, end: number): HeaderVerdict {
    // Clients of one app send one header: compare it in place before slicing and hashing a key.
    const last = this.lastHeader;
    if (last !== null && last.segment.length === end && token.startsWith(last.segment)) return last.verdict;
    const segment = token.slice(0, end);
    let verdict = this.headers.get(segment);
    if (verdict !== undefined) {
      this.lastHeader = { segment, verdict };
      return verdict;
    }
    verdict = readHeader(segment);
    if (this.headers.size >= HEADER_CACHE_SIZE) this.headers.clear();
    this.headers.set(segment, verdict);
    this.lastHeader = { segment, verdict };
    return verdict;
  }
}

/**
 * One secret, ready to MAC. HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)) (RFC 2104), computed with two
 * one-shot hashes over key blocks padded once per digest: createHmac built a Hmac object, a lazy stream and
 * a native handle per call, which cost more than the hashing (profiled: ~3/4 of the verify time).
 */
class HmacKey {
  private readonly pads = new Map<string, Pads>();

  constructor(private readonly secret: Buffer) {}

  /** The base64url MAC of the first `length` characters of the ASCII `text`. */
  mac(digest: Digest, text: string, length: number): string {
    if (oneShotHash === undefined) return createHmac(digest.name, this.secret).update(text.slice(0, length), 'latin1').digest('base64url');
    const pads = this.padsFor(digest);
    // Both inputs are written into buffers that already hold their pad: verify is synchronous, so one
    // pair per key and digest is enough, and a connect allocates no buffer of its own.
    const block = digest.blockBytes;
    if (pads.inner.length < block + length) pads.inner = paddedBuffer(pads.inner.subarray(0, block), block + length);
    pads.inner.write(text, block, length, 'latin1');
    // As Latin-1 text, not a Buffer: a Buffer result is an ArrayBuffer with a malloc'd store of its own.
    pads.outer.write(oneShotHash(digest.name, pads.inner.subarray(0, block + length), 'latin1') as string, block, 'latin1');
    return oneShotHash(digest.name, pads.outer, 'base64url');
  }

  private padsFor(digest: Digest): Pads {
    let pads = this.pads.get(digest.name);
    if (pads === undefined) {
      // A key longer than a block is hashed first (RFC 2104), then zero-padded to the block.
      const key = this.secret.length > digest.blockBytes ? crypto.createHash(digest.name).update(this.secret).digest() : this.secret;
      const inner = Buffer.alloc(digest.blockBytes, 0x36);
      const outer = Buffer.alloc(digest.blockBytes, 0x5c);
      for (let i = 0; i < key.length; i++) {
        inner[i] = (inner[i] ?? 0) ^ (key[i] ?? 0);
        outer[i] = (outer[i] ?? 0) ^ (key[i] ?? 0);
      }
      // The outer input is the pad and the inner hash, whose length is the digest's.
      const digestBytes = crypto.createHash(digest.name).digest().length;
      pads = { inner: paddedBuffer(inner, digest.blockBytes + 512), outer: paddedBuffer(outer, digest.blockBytes + digestBytes) };
      this.pads.set(digest.name, pads);
    }
    return pads;
  }
}

/** `pad` followed by room for a message: `size` bytes in all. */
interface Pads {
  /** ipad block, then the message (grown for longer tokens). */
  inner: Buffer;
  /** opad block, then the inner hash: exactly the outer input. */
  readonly outer: Buffer;
}

function paddedBuffer(pad: Buffer, size: number): Buffer {
  const buffer = Buffer.alloc(size);
  pad.copy(buffer, 0);
  return buffer;
}

/**
 * Compares two strings without an early exit (the time does not depend on where they differ). The MACs
 * compared are base64url text of a fixed length per algorithm, so the length check leaks nothing. In JS
 * rather than timingSafeEqual: that needs both sides as Buffers, two allocations per connect.
 */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
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

/** The claims of a payload segment already checked to be base64url text. */
function claims(segment: string): JwtVerdict {
  const payload = parseSegment(segment, true);
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
let decoded = Buffer.alloc(1024);

function parseSegment(segment: string, checked = false): Record<string, unknown> | null {
  if (!checked && !BASE64URL.test(segment)) return null;
  let value: unknown;
  try {
    // Decoded into a reused buffer (verify is synchronous): no Buffer object per segment.
    const size = Math.ceil((segment.length * 3) / 4);
    if (decoded.length < size) decoded = Buffer.alloc(size);
    const length = decoded.write(segment, 0, 'base64url');
    value = JSON.parse(decoded.toString('utf8', 0, length));
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
