import { randomBytes } from 'node:crypto';

/** A short random epoch id (8 base64url chars, 48 bits): only needs to differ from its predecessors. */
export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}
