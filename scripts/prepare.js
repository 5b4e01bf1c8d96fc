// `npm install` in a source checkout builds dist/ once, so `npm start` only runs it. A published package has
// dist/ already and no src/; a production install of a checkout has no TypeScript: both skip, with a note.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url);
if (!existsSync(new URL('src', root)) || !existsSync(new URL('tsconfig.build.json', root))) process.exit(0);

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  console.warn('cablecat: TypeScript is not installed (production install?), so dist/ was not built; ' +
    'run `npm install` with dev dependencies, then `npm run build`.');
  process.exit(0);
}
const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
