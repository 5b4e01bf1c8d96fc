import { createRequire } from 'node:module';
import type * as UwsModule from 'uWebSockets.js';
import { CablecatError } from '../errors.js';

export type Uws = typeof UwsModule;

/**
 * Loads uWebSockets.js and refuses the silent JS fallback of the republished package:
 * the fallback lacks `getParts`, and serving on it would lose the whole point of cablecat.
 */
export function loadUws(): Uws {
  // uWS's default header limit (4 KiB) is too small for a JWT in the query plus cookies.
  process.env.UWS_HTTP_MAX_HEADERS_SIZE ??= '16384';
  const require = createRequire(import.meta.url);
  const originalWarn = console.warn;
  let uws: Uws;
  try {
    // The package prints its own fallback warning; we replace it with a clear refusal below.
    console.warn = () => {};
    uws = require('uWebSockets.js') as Uws;
  } finally {
    console.warn = originalWarn;
  }
  if (typeof (uws as { getParts?: unknown }).getParts !== 'function') {
    throw new CablecatError(
      'CABLECAT_ERR_UWS_FALLBACK',
      `uWebSockets.js native binary did not load for ${process.platform}-${process.arch} (Node ABI ${process.versions.modules}); ` +
        'refusing to start on the slow JS fallback. Use Node 20 on Linux x64/arm64, or reinstall dependencies.',
    );
  }
  return uws;
}
