/**
 * Which uWebSockets.js package can serve this Node and libc. Pure: the facts about the host come in as data,
 * so every combination (Node ABI, libc, platform) is unit-tested without that machine.
 *
 * uWebSockets.js is not on npm; three sources of it ship prebuilt binaries, each for a different range:
 * - the official package, installed by the user from its GitHub release tags: whatever that tag supports;
 * - `@btc-vision/uwebsockets.js` 20.57.0: Node 20/22/24/25, but linked against glibc 2.38;
 * - `@trufflesuite/uws-js-unofficial` 20.30.0: Node 16/18/20 only, runs on glibc 2.27 and newer.
 */

export type Libc =
  | { readonly family: 'glibc'; readonly version: string }
  | { readonly family: 'musl' }
  /** Not Linux: macOS and Windows binaries have no libc requirement worth checking. */
  | { readonly family: 'none' };

export interface UwsHost {
  readonly platform: string;
  readonly arch: string;
  /** `process.versions.modules`: the ABI a native binary is built for. */
  readonly abi: number;
  readonly nodeVersion: string;
  readonly libc: Libc;
}

export interface UwsPackage {
  readonly name: string;
  /** Version to install when we recommend it (empty for the official package: the user picks a tag). */
  readonly version: string;
  /** Path of the binary for this host, relative to the package directory. */
  binaryFile(host: UwsHost): string;
  /** Why this package cannot serve this host, or null when its binary should load. */
  misfit(host: UwsHost): string | null;
}

/** Node major → ABI, for the messages (the ABI is what binaries are built for). */
const NODE_OF_ABI: Readonly<Record<number, number>> = { 93: 16, 108: 18, 115: 20, 127: 22, 137: 24, 141: 25 };

export function nodeMajorOf(host: UwsHost): number {
  return NODE_OF_ABI[host.abi] ?? Number(host.nodeVersion.replace(/^v/, '').split('.')[0]);
}

/** Compares dotted versions numerically ("2.38" > "2.9"). */
export function versionAtLeast(actual: string, wanted: string): boolean {
  const a = actual.split('.').map(Number);
  const w = wanted.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, w.length); i++) {
    const x = a[i] ?? 0;
    const y = w[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

function standardBinary(host: UwsHost): string {
  return `uws_${host.platform}_${host.arch}_${host.abi}.node`;
}

interface BinarySet {
  readonly abis: readonly number[];
  /** platform → architectures with a binary. */
  readonly targets: Readonly<Record<string, readonly string[]>>;
  /** Lowest glibc the Linux binaries link against. */
  readonly minGlibc: string;
}

function misfitOf(set: BinarySet, host: UwsHost): string | null {
  if (!set.abis.includes(host.abi)) {
    const nodes = set.abis.map((abi) => NODE_OF_ABI[abi]).join('/');
    return `no binary for Node ${nodeMajorOf(host)} (ABI ${host.abi}); it has Node ${nodes}`;
  }
  if (!(set.targets[host.platform] ?? []).includes(host.arch)) return `no binary for ${host.platform}-${host.arch}`;
  if (host.platform !== 'linux') return null;
  if (host.libc.family === 'musl') return 'its Linux binaries need glibc, this system has musl (Alpine?)';
  if (host.libc.family === 'glibc' && !versionAtLeast(host.libc.version, set.minGlibc)) {
    return `needs glibc >= ${set.minGlibc}, this system has ${host.libc.version}`;
  }
  return null;
}

export const OFFICIAL: UwsPackage = {
  name: 'uWebSockets.js',
  version: '',
  binaryFile: standardBinary,
  // Whatever tag the user installed: only loading it tells.
  misfit: () => null,
};

const BTC_VISION_SET: BinarySet = {
  abis: [115, 127, 137, 141],
  targets: { linux: ['x64', 'arm64'], darwin: ['x64', 'arm64'], win32: ['x64'] },
  minGlibc: '2.38',
};

export const BTC_VISION: UwsPackage = {
  name: '@btc-vision/uwebsockets.js',
  version: '20.57.0',
  binaryFile: standardBinary,
  misfit: (host) => misfitOf(BTC_VISION_SET, host),
};

const TRUFFLESUITE_SET: BinarySet = {
  abis: [93, 108, 115],
  targets: { linux: ['x64', 'arm64', 'arm'], darwin: ['x64', 'arm64'], win32: ['x64'] },
  minGlibc: '2.27',
};

export const TRUFFLESUITE: UwsPackage = {
  name: '@trufflesuite/uws-js-unofficial',
  version: '20.30.0-unofficial.0',
  binaryFile: (host) => `binaries/${standardBinary(host)}`,
  misfit: (host) => misfitOf(TRUFFLESUITE_SET, host),
};

/** In order of preference: the user's own choice, then the newest uWS, then the one for older systems. */
export const UWS_PACKAGES: readonly UwsPackage[] = [OFFICIAL, BTC_VISION, TRUFFLESUITE];

/** The packages worth trying on this host, best first. */
export function uwsCandidates(host: UwsHost): UwsPackage[] {
  return UWS_PACKAGES.filter((pkg) => pkg.misfit(host) === null);
}

/** The bundled package this host should use (ignoring the official one, which the user adds), or null. */
export function bundledUwsFor(host: UwsHost): UwsPackage | null {
  return uwsCandidates(host).find((pkg) => pkg !== OFFICIAL) ?? null;
}

function describeLibc(libc: Libc): string {
  return libc.family === 'glibc' ? `glibc ${libc.version}` : libc.family === 'musl' ? 'musl' : '';
}

export function describeHost(host: UwsHost): string {
  const libc = describeLibc(host.libc);
  return `Node ${host.nodeVersion} (ABI ${host.abi}) on ${host.platform}-${host.arch}${libc ? ` with ${libc}` : ''}`;
}

const OFFICIAL_HINT = 'npm install uNetworking/uWebSockets.js#v20.57.0 (pick a release tag that lists your Node version)';

/**
 * What the user should do when no uWebSockets.js binary loaded on this host. `installed`: names of the
 * packages found in node_modules.
 */
export function uwsAdvice(host: UwsHost, installed: ReadonlySet<string> = new Set()): string {
  const node = nodeMajorOf(host);
  const bundled = bundledUwsFor(host);
  if (bundled && !installed.has(bundled.name)) {
    // Left out by --omit=optional or --no-optional, or its download failed.
    return `install the binary for this system: npm install ${bundled.name}@${bundled.version}`;
  }
  if (bundled) {
    return `${bundled.name} is installed but its binary did not load: reinstall it ` +
      `(npm install --force ${bundled.name}@${bundled.version}) and make sure UWS_USE_FALLBACK is not set`;
  }
  if (host.platform === 'linux' && host.libc.family === 'musl') {
    return 'the prebuilt uWebSockets.js binaries need glibc: run on a glibc system or image (Debian/Ubuntu; ' +
      'the cablecat Docker image is node:22-trixie-slim), not Alpine/musl';
  }
  const btcFits = BTC_VISION.misfit({ ...host, libc: { family: 'glibc', version: '99' } }) === null;
  if (host.platform === 'linux' && btcFits && host.libc.family === 'glibc') {
    return `Node ${node} needs glibc >= 2.38 for ${BTC_VISION.name} and this system has glibc ${host.libc.version}: ` +
      'either run Node 20 (its binary needs only glibc 2.27), or move to glibc >= 2.38 (Debian 13, Ubuntu 24.04, ' +
      `the node:${node}-trixie-slim image, or the cablecat Docker image), or ${OFFICIAL_HINT}`;
  }
  return `no bundled binary fits Node ${node} on ${host.platform}-${host.arch}: run Node 20, 22 or 24 on ` +
    `Linux (x64/arm64, glibc >= 2.38 for 22/24), macOS or Windows x64, or ${OFFICIAL_HINT}`;
}
