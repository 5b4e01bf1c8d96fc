import { randomFillSync } from 'node:crypto';

/** Random bytes for 256 ids, refilled from the CSPRNG when used up (as node:crypto's randomUUID caches). */
const pool = Buffer.alloc(16 * 256);
let used = pool.length;
/** The 36 ASCII characters of the id being formatted. */
const text = Buffer.alloc(36);
/** byte → its two lower-case hex digits as ASCII codes. */
const HEX = new Uint8Array(512);
for (let b = 0; b < 256; b++) {
  const digits = b.toString(16).padStart(2, '0');
  HEX[2 * b] = digits.charCodeAt(0);
  HEX[2 * b + 1] = digits.charCodeAt(1);
}

/**
 * A new session id: a random (version 4) UUID, as `crypto.randomUUID()` makes it. Formatted into one
 * buffer and read as one string: randomUUID concatenates twenty pieces (~0.6 KB of garbage per connect).
 * Unguessable, because a sid restores a session (ext-json) without authentication.
 */
export function newSid(): string {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  let at = 0;
  for (let i = 0; i < 16; i++) {
    let byte = pool[used + i]!;
    if (i === 6) byte = (byte & 0x0f) | 0x40; // version 4
    else if (i === 8) byte = (byte & 0x3f) | 0x80; // RFC 4122 variant
    if (i === 4 || i === 6 || i === 8 || i === 10) text[at++] = 0x2d; // '-'
    text[at++] = HEX[2 * byte]!;
    text[at++] = HEX[2 * byte + 1]!;
  }
  used += 16;
  return text.toString('latin1', 0, 36);
}
