#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built once by `npm install` in a checkout, shipped in the package).
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('cablecat: not built yet (dist/ is missing): run `npm install` (with dev dependencies) or `npm run build`\n');
  process.exit(1);
}
await import(main.href);
