import { createHmac } from 'node:crypto';
import { safeEqual } from '../auth/keys.js';

/**
 * Rails MessageVerifier (SHA256) format, as AnyCable signs stream names:
 * base64(JSON(stream)) + "--" + hex(HMAC-SHA256(secret, base64 part)).
 */
export function signStreamName(secret: string, stream: string): string {
  const encoded = Buffer.from(JSON.stringify(stream), 'utf8').toString('base64');
  return `${encoded}--${createHmac('sha256', secret).update(encoded).digest('hex')}`;
}

/** The stream name, or null when the signature or the payload is not valid. */
export function verifyStreamName(secret: string, signed: string): string | null {
  if (!secret) return null;
  const sep = signed.lastIndexOf('--');
  if (sep <= 0) return null;
  const encoded = signed.slice(0, sep);
  const digest = signed.slice(sep + 2);
  if (!safeEqual(digest, createHmac('sha256', secret).update(encoded).digest('hex'))) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
    return typeof value === 'string' ? value : null;
  } catch {
    return null;
  }
}
