import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  BTC_VISION, OFFICIAL, TRUFFLESUITE, bundledUwsFor, uwsAdvice, uwsCandidates, versionAtLeast, type Libc, type UwsHost,
} from '../../src/server/uws-select.js';
import { detectHost, findInstalled, loadUwsPackage, predictUws } from '../../src/server/uws.js';

const ABI = { node18: 108, node20: 115, node22: 127, node24: 137, node26: 147 } as const;
const glibc = (version: string): Libc => ({ family: 'glibc', version });

function host(abi: number, libc: Libc, platform = 'linux', arch = 'x64'): UwsHost {
  return { platform, arch, abi, nodeVersion: `v${{ 108: 18, 115: 20, 127: 22, 137: 24, 147: 26 }[abi] ?? 0}.1.0`, libc };
}

const names = (h: UwsHost): string[] => uwsCandidates(h).map((p) => p.name);

describe('uWebSockets.js package selection (ABI and libc → package)', () => {
  test('glibc versions compare numerically', () => {
    assert.equal(versionAtLeast('2.38', '2.38'), true);
    assert.equal(versionAtLeast('2.41', '2.38'), true);
    assert.equal(versionAtLeast('2.9', '2.38'), false);
    assert.equal(versionAtLeast('2.36', '2.38'), false);
    assert.equal(versionAtLeast('3.0', '2.38'), true);
  });

  test('Node 20 on glibc 2.36 (Debian 12) gets trufflesuite: btc-vision needs glibc 2.38', () => {
    const h = host(ABI.node20, glibc('2.36'));
    assert.deepEqual(names(h), [OFFICIAL.name, TRUFFLESUITE.name]);
    assert.equal(bundledUwsFor(h), TRUFFLESUITE);
    assert.equal(BTC_VISION.misfit(h), 'needs glibc >= 2.38, this system has 2.36');
  });

  test('Node 20 on glibc 2.39 prefers the newer btc-vision build, trufflesuite second', () => {
    assert.deepEqual(names(host(ABI.node20, glibc('2.39'))), [OFFICIAL.name, BTC_VISION.name, TRUFFLESUITE.name]);
  });

  test('Node 22 and 24 on glibc >= 2.38 get btc-vision, never trufflesuite', () => {
    for (const abi of [ABI.node22, ABI.node24]) {
      const h = host(abi, glibc('2.41'));
      assert.deepEqual(names(h), [OFFICIAL.name, BTC_VISION.name]);
      assert.match(TRUFFLESUITE.misfit(h) ?? '', /no binary for Node (22|24)/);
    }
  });

  test('Node 22 on glibc 2.36: nothing bundled fits; the advice names both ways out', () => {
    const h = host(ABI.node22, glibc('2.36'));
    assert.deepEqual(names(h), [OFFICIAL.name]);
    assert.equal(bundledUwsFor(h), null);
    const advice = uwsAdvice(h);
    assert.match(advice, /Node 22 needs glibc >= 2\.38 for @btc-vision\/uwebsockets\.js and this system has glibc 2\.36/);
    assert.match(advice, /run Node 20/);
    assert.match(advice, /npm install uNetworking\/uWebSockets\.js#v/);
  });

  test('musl (Alpine) gets no bundled binary and is told to use a glibc image', () => {
    const h = host(ABI.node22, { family: 'musl' });
    assert.equal(bundledUwsFor(h), null);
    assert.match(uwsAdvice(h), /need glibc.*not Alpine\/musl/);
  });

  test('an unsupported Node (18 or 26) is told which versions work', () => {
    for (const abi of [ABI.node18, ABI.node26]) {
      const h = host(abi, glibc('2.41'));
      assert.equal(bundledUwsFor(h), abi === ABI.node18 ? TRUFFLESUITE : null);
    }
    assert.match(uwsAdvice(host(ABI.node26, glibc('2.41'))), /no bundled binary fits Node 26.*run Node 20, 22 or 24/);
  });

  test('macOS and Windows have no libc condition; unsupported architectures are named', () => {
    assert.deepEqual(names(host(ABI.node24, { family: 'none' }, 'darwin', 'arm64')), [OFFICIAL.name, BTC_VISION.name]);
    assert.deepEqual(names(host(ABI.node20, { family: 'none' }, 'win32', 'x64')), [OFFICIAL.name, BTC_VISION.name, TRUFFLESUITE.name]);
    assert.equal(BTC_VISION.misfit(host(ABI.node22, glibc('2.41'), 'linux', 'ppc64')), 'no binary for linux-ppc64');
  });

  test('the advice for a fitting package depends on whether it is installed', () => {
    const h = host(ABI.node24, glibc('2.41'));
    assert.equal(uwsAdvice(h), 'install the binary for this system: npm install @btc-vision/uwebsockets.js@20.57.0');
    assert.match(uwsAdvice(h, new Set([BTC_VISION.name])), /installed but its binary did not load: reinstall it/);
  });

  test('binary file names follow each package layout', () => {
    const h = host(ABI.node20, glibc('2.36'));
    assert.equal(TRUFFLESUITE.binaryFile(h), 'binaries/uws_linux_x64_115.node');
    assert.equal(BTC_VISION.binaryFile(host(ABI.node24, glibc('2.41'), 'linux', 'arm64')), 'uws_linux_arm64_137.node');
  });
});

describe('uWebSockets.js real load on this machine', () => {
  test('loads the package the selection names for this Node and libc, with its native binary', () => {
    const h = detectHost();
    const expected = findInstalled(OFFICIAL)?.pkg ?? bundledUwsFor(h);
    assert.ok(expected, `this machine (${JSON.stringify(h)}) has no fitting package`);
    const loaded = loadUwsPackage();
    assert.equal(loaded.pkg.name, expected.name);
    assert.equal(typeof loaded.uws.getParts, 'function', 'native binary, not the JS fallback');
    assert.equal(predictUws(h)?.pkg.name, expected.name, '--version predicts what start-up loads');
  });

  test('every optional uWS package installs, also the one whose binary cannot load here', () => {
    assert.ok(findInstalled(BTC_VISION), 'btc-vision installed');
    assert.ok(findInstalled(TRUFFLESUITE), 'trufflesuite installed');
  });

  test('the slow JS fallback of the trufflesuite package is refused, not served', () => {
    // UWS_USE_FALLBACK makes trufflesuite hand out its JS fallback on any host (as a missing binary does).
    const code = "import('./dist/src/server/uws.js').then((m) => { m.loadInstalled(m.findInstalled(m.TRUFFLESUITE_PACKAGE)); console.log('loaded'); })" +
      ".catch((e) => console.log('refused: ' + e.message))";
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, UWS_USE_FALLBACK: '1' } });
    assert.equal(run.stdout, 'refused: its native binary did not load (only the slow JS fallback did)\n', run.stderr);
  });
});
