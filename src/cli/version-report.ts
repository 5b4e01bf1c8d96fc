import { VERSION } from '../version.js';
import { detectHost, describeUws, predictUws } from '../server/uws.js';
import { describeHost } from '../server/uws-select.js';

/**
 * `cablecat --version`: our version, the runtime, and which uWebSockets.js binary start-up will load. Judged
 * from the installed files without loading the binary, so it answers instantly even where none loads.
 */
export function versionReport(): string {
  const host = detectHost();
  return [
    `cablecat ${VERSION}`,
    `runtime: ${describeHost(host)}`,
    `uWebSockets.js: ${describeUws(predictUws(host), host)}`,
  ].join('\n');
}
