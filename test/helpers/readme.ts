import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The code block that follows `<!-- readme-test:<name> -->` in README.md, without its trailing blank space. */
export function readmeBlock(name: string): string {
  const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
  const marker = `<!-- readme-test:${name} -->`;
  const at = readme.indexOf(marker);
  assert.ok(at !== -1, `README has ${marker}`);
  const match = /```[a-z]*\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(match?.[1], `a code block follows ${marker}`);
  return match[1].trimEnd();
}
