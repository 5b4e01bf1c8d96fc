// Session ids: random version-4 UUIDs, as crypto.randomUUID makes them, across refills of the random pool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newSid } from '../../src/node/sid.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('session ids are distinct version-4 UUIDs, also after the random pool is refilled', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const sid = newSid();
    assert.match(sid, UUID_V4);
    seen.add(sid);
  }
  assert.equal(seen.size, 2000);
  // Every hex digit shows up in every free position sooner or later (no byte stuck by the formatting).
  for (const position of [0, 9, 15, 20, 35]) {
    const digits = new Set([...seen].map((sid) => sid[position]));
    assert.ok(digits.size >= 15, `position ${position}: ${[...digits].join('')}`);
  }
});
