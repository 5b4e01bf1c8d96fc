// Run before the tests (npm pretest): the SSE browser test drives Debian's Chromium through playwright-core.
// On a fresh machine it is installed with apt-get when we are root; otherwise we say what to do and go on
// (that test then fails with the same advice: it is never skipped).
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export const CHROMIUM = process.env.CABLECAT_CHROMIUM || '/usr/bin/chromium';

function run(cmd, args) {
  const result = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return result.status === 0;
}

if (!existsSync(CHROMIUM)) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
  if (isRoot && hasApt) {
    console.log(`pretest: ${CHROMIUM} is missing, installing Debian's chromium (apt-get) for the SSE browser test`);
    if (!run('apt-get', ['update']) || !run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'])) {
      console.error('pretest: apt-get could not install chromium; the SSE browser test will fail');
    }
  } else {
    console.error(`pretest: ${CHROMIUM} is missing and cannot be installed here (needs root and apt-get): ` +
      'run `apt-get install -y chromium` (or set CABLECAT_CHROMIUM to a Chromium binary); the SSE browser test will fail');
  }
}
