import { readFileSync } from 'node:fs';

/** Package version, read once from package.json so there is a single source of truth. */
export const VERSION: string = (() => {
  const raw: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  return typeof raw === 'object' && raw !== null && 'version' in raw && typeof raw.version === 'string' ? raw.version : '0.0.0';
})();

/** RPC protocol versions advertised in the `protov` metadata. */
export const PROTOCOL_VERSIONS = 'v1';
