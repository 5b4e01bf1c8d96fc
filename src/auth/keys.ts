import { createHmac, timingSafeEqual, createHash } from 'node:crypto';

/** anycable-go's derived keys: lower-case hex HMAC-SHA256(key = secret, message = phrase). */
export function deriveKey(secret: string, phrase: 'broadcast-cable' | 'rpc-cable' | 'api-cable'): string {
  return createHmac('sha256', secret).update(phrase).digest('hex');
}

/** Constant-time string comparison; hashing first makes lengths equal so length leaks nothing. */
export function safeEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given.length === expected.length;
}

/** The token of an `Authorization: Bearer <token>` header, or '' */
export function bearerToken(authorization: string): string {
  const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
  return match?.[1] ?? '';
}
