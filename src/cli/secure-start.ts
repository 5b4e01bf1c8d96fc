import { randomBytes } from 'node:crypto';
import type { Config } from '../config/config.js';
import { withGeneratedSecret } from '../config/load.js';

const WEAK_SECRETS = new Set(['secret', 'changeme', 'password', 'anycable', 'test']);
export const MIN_SECRET_LENGTH = 16;

export type StartVerdict =
  | { readonly kind: 'ok'; readonly config: Config; readonly warnings: readonly string[] }
  | { readonly kind: 'generated'; readonly config: Config; readonly warnings: readonly string[] }
  | { readonly kind: 'refuse'; readonly problems: readonly string[] };

function isWeak(secret: string): boolean {
  return WEAK_SECRETS.has(secret.toLowerCase()) || secret.length < MIN_SECRET_LENGTH;
}

/**
 * A fresh install must not talk to strangers by accident. Without a secret (and not --public/--noauth):
 * production refuses to start; development generates a random secret and says so loudly.
 */
export function checkSecrets(config: Config, production: boolean): StartVerdict {
  const open = config.public || config.noauth;
  const broadcastsOpen = config.broadcastAdapters.includes('http') && config.broadcastKey === '' && !config.broadcastOpen;
  const missing = !open && config.secret === '' && (config.jwtSecrets.length === 0 || broadcastsOpen);
  const weak = [config.secret, ...config.jwtSecrets].filter((s) => s !== '' && isWeak(s));
  const problems: string[] = [];
  if (missing) problems.push('no secret is set: set ANYCABLE_SECRET (or --secret), or run explicitly open with ANYCABLE_PUBLIC=true / ANYCABLE_NOAUTH=true');
  if (weak.length > 0) problems.push(`a secret is weak (a well-known word or shorter than ${MIN_SECRET_LENGTH} characters): set a long random ANYCABLE_SECRET / ANYCABLE_JWT_SECRET`);
  if (production && problems.length > 0) return { kind: 'refuse', problems };
  const warnings = weak.length > 0 ? [problems[problems.length - 1] ?? ''] : [];
  if (!missing) return { kind: 'ok', config, warnings };
  return { kind: 'generated', config: withGeneratedSecret(config, randomBytes(32).toString('hex')), warnings };
}
