import assert from 'node:assert/strict';

/** A small Prometheus text-format parser: `name{labels} value` lines, comments skipped. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    assert.ok(match, `valid exposition line: ${line}`);
    out.set(match[1]! + (match[2] ?? ''), Number(match[3]));
  }
  return out;
}
