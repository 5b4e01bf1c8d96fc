import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
// Types only: tsconfig maps 'uWebSockets.js' to the oldest API we support (20.30), so code compiled against it
// runs on every package below. The runtime module is chosen in loadUws().
import type * as UwsModule from 'uWebSockets.js';
import { CablecatError, errorMessage } from '../errors.js';
import { describeHost, uwsAdvice, uwsCandidates, UWS_PACKAGES, type Libc, type UwsHost, type UwsPackage } from './uws-select.js';

export type Uws = typeof UwsModule;

export interface InstalledUws {
  readonly pkg: UwsPackage;
  /** name@version from the installed package.json (the official package may be any tag). */
  readonly id: string;
  readonly dir: string;
}

export interface LoadedUws extends InstalledUws {
  readonly uws: Uws;
}

const require = createRequire(import.meta.url);

function detectLibc(): Libc {
  if (process.platform !== 'linux') return { family: 'none' };
  // Node records the glibc it runs on in its diagnostic report; musl builds have no such field.
  // (Called before any socket exists, so the report does no reverse DNS look-ups.)
  const report: unknown = process.report.getReport();
  const header = typeof report === 'object' && report !== null && 'header' in report ? report.header : undefined;
  const version = typeof header === 'object' && header !== null && 'glibcVersionRuntime' in header ? header.glibcVersionRuntime : undefined;
  return typeof version === 'string' ? { family: 'glibc', version } : { family: 'musl' };
}

export function detectHost(): UwsHost {
  return {
    platform: process.platform,
    arch: process.arch,
    abi: Number(process.versions.modules),
    nodeVersion: process.version,
    libc: detectLibc(),
  };
}

function readManifest(dir: string): { name: string; version: string } | null {
  const path = join(dir, 'package.json');
  if (!existsSync(path)) return null;
  const raw: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (typeof raw !== 'object' || raw === null || !('name' in raw) || typeof raw.name !== 'string') return null;
  return { name: raw.name, version: 'version' in raw && typeof raw.version === 'string' ? raw.version : '?' };
}

/** The installed copy of `pkg` as Node would resolve it from here, without loading it. */
export function findInstalled(pkg: UwsPackage): InstalledUws | null {
  let entry: string;
  try {
    entry = require.resolve(pkg.name);
  } catch {
    return null;
  }
  // Walk up from the entry file to the package root (the packages' `exports` hide their package.json).
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = readManifest(dir);
    if (manifest) return { pkg, id: `${manifest.name}@${manifest.version}`, dir };
  }
  return null;
}

/** The package loadUws() would pick, judged from files only (for --version, which must stay instant). */
export function predictUws(host: UwsHost = detectHost()): InstalledUws | null {
  for (const pkg of uwsCandidates(host)) {
    const installed = findInstalled(pkg);
    if (installed && existsSync(join(installed.dir, pkg.binaryFile(host)))) return installed;
  }
  return null;
}

/** Loads one installed package; throws when only its JS fallback (not the native binary) loads. */
export function loadInstalled(installed: InstalledUws): Uws {
  const { log, warn } = console;
  let uws: Uws;
  try {
    // The trufflesuite package prints a notice and falls back to a slow JS server when its binary does not
    // load (or UWS_USE_FALLBACK is set); we silence it and refuse the fallback below instead.
    console.log = console.warn = () => {};
    uws = require(installed.pkg.name) as Uws;
  } finally {
    Object.assign(console, { log, warn });
  }
  // The fallback lacks getParts: serving on it would lose the whole point of cablecat.
  if (typeof (uws as { getParts?: unknown }).getParts !== 'function') {
    throw new Error('its native binary did not load (only the slow JS fallback did)');
  }
  return uws;
}

let loaded: LoadedUws | undefined;

/**
 * Loads uWebSockets.js from the first package whose native binary loads on this Node and libc: the official
 * package when the user installed it, then @btc-vision/uwebsockets.js, then @trufflesuite/uws-js-unofficial.
 */
export function loadUwsPackage(): LoadedUws {
  if (loaded) return loaded;
  // uWS's default header limit (4 KiB) is too small for a JWT in the query plus cookies.
  process.env.UWS_HTTP_MAX_HEADERS_SIZE ??= '16384';
  const host = detectHost();
  const failures: string[] = [];
  const found = new Set<string>();
  for (const pkg of uwsCandidates(host)) {
    const installed = findInstalled(pkg);
    if (!installed) continue;
    found.add(pkg.name);
    try {
      loaded = { ...installed, uws: loadInstalled(installed) };
      return loaded;
    } catch (err) {
      failures.push(`${installed.id}: ${firstLine(errorMessage(err))}`);
    }
  }
  throw new CablecatError(
    'CABLECAT_ERR_UWS_BINARY',
    `no uWebSockets.js native binary loads on ${describeHost(host)}` +
      (failures.length > 0 ? ` (${failures.join('; ')})` : '') +
      `. To fix: ${uwsAdvice(host, found)}.`,
  );
}

export function loadUws(): Uws {
  return loadUwsPackage().uws;
}

/** Binary errors repeat the whole explanation of the package; the first line says what failed. */
function firstLine(message: string): string {
  const lines = message.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  // btc-vision/official wrap the dlopen error after a generic sentence: keep the specific part.
  return lines.find((l) => l.startsWith('Error:'))?.replace(/^Error:\s*/, '') ?? lines[0] ?? message;
}

/** For logs and --version: which package serves uWS, e.g. "@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0". */
export function describeUws(installed: InstalledUws | null, host: UwsHost): string {
  if (!installed) return `none usable: ${uwsAdvice(host, new Set(UWS_PACKAGES.filter((p) => findInstalled(p)).map((p) => p.name)))}`;
  const file = installed.pkg.binaryFile(host);
  return `${installed.id} (${file})`;
}

/** For tests and tools: the package that ships a JS fallback. */
export { TRUFFLESUITE as TRUFFLESUITE_PACKAGE } from './uws-select.js';
