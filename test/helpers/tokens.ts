import { SignJWT } from 'jose';
import { createSecretKey } from 'node:crypto';

/** Signs a test token; `alg` and claims are free so tests can forge bad ones too. */
export async function signToken(secret: string, claims: Record<string, unknown>, opts: { alg?: string; expiresIn?: number } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: opts.alg ?? 'HS256' });
  if (opts.expiresIn !== undefined) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + opts.expiresIn);
  return jwt.sign(createSecretKey(Buffer.from(secret)));
}

export function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
