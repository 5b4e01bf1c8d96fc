// Imported first by the CLI, before anything allocates: keeps V8's young generation at its initial size.
//
// Why: V8 doubles the young generation (up to 2 × 16 MB semi-spaces on 64-bit) whenever many objects
// survive a scavenge, and a connect storm is exactly that (every new session survives). The grown space
// is never given back while the server idles, so RSS kept ~16–27 MB it did not need: 1.6–3.3 KB per
// connection at 10k/5k connections, more than everything a connection really holds. Sessions are long-lived
// and are promoted to the old generation either way; per-message garbage is short-lived and fits the
// initial 1 MB semi-spaces. Measured in bench/README.md (memory and CPU per connect, with and without).
//
// An operator who sizes the young generation explicitly (--max-semi-space-size, --min-semi-space-size or
// --semi-space-growth-factor in the node options) keeps that choice.
import { setFlagsFromString } from 'node:v8';

const SEMI_SPACE_FLAGS = /--(max|min)[-_]semi[-_]space[-_]size|--semi[-_]space[-_]growth[-_]factor/;

export function operatorSizedYoungGeneration(execArgv: readonly string[], nodeOptions: string): boolean {
  return execArgv.some((arg) => SEMI_SPACE_FLAGS.test(arg)) || SEMI_SPACE_FLAGS.test(nodeOptions);
}

if (!operatorSizedYoungGeneration(process.execArgv, process.env.NODE_OPTIONS ?? '')) {
  setFlagsFromString('--semi-space-growth-factor=1');
}
