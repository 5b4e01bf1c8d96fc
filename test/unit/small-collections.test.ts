// SmallMap/SmallSet behave like Map/Set for what sessions do with them (seeded random operation sequences).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SmallMap, SmallSet } from '../../src/node/small-collections.js';
import { operatorSizedYoungGeneration } from '../../src/runtime/young-generation.js';

const key = fc.constantFrom('a', 'b', 'c', 'd', 'e');
const op = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), key, value: fc.nat(9) }),
  fc.record({ kind: fc.constant('delete' as const), key }),
  fc.record({ kind: fc.constant('clear' as const) }),
);

test('SmallMap and SmallSet agree with Map and Set: contents, order, size, lookups, delete during iteration', () => {
  fc.assert(fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
    const map = new Map<string, number>();
    const small = new SmallMap<string, number>();
    const set = new Set<string>();
    const smallSet = new SmallSet<string>();
    for (const o of ops) {
      if (o.kind === 'set') {
        map.set(o.key, o.value); small.set(o.key, o.value);
        set.add(o.key); smallSet.add(o.key);
      } else if (o.kind === 'delete') {
        assert.equal(small.delete(o.key), map.delete(o.key));
        assert.equal(smallSet.delete(o.key), set.delete(o.key));
      } else {
        set.clear(); smallSet.clear();
      }
      assert.deepEqual([...small], [...map]);
      assert.deepEqual([...small.keys()], [...map.keys()]);
      assert.deepEqual([...small.values()], [...map.values()]);
      assert.equal(small.size, map.size);
      assert.deepEqual([...smallSet], [...set]);
      assert.deepEqual([...smallSet.entries()], [...set.entries()]);
      assert.equal(smallSet.size, set.size);
      for (const k of ['a', 'b', 'z']) {
        assert.equal(small.get(k), map.get(k));
        assert.equal(small.has(k), map.has(k));
        assert.equal(smallSet.has(k), set.has(k));
      }
    }
    // Deleting every entry while iterating visits each once, like Map.
    const seen: string[] = [];
    for (const [k] of small) { seen.push(k); small.delete(k); }
    assert.deepEqual(seen, [...map.keys()]);
    assert.equal(small.size, 0);
  }), { seed: 15, numRuns: 500 });
});

test('the young-generation cap stays off when the operator sizes it in node options or flags', () => {
  assert.equal(operatorSizedYoungGeneration([], ''), false);
  assert.equal(operatorSizedYoungGeneration(['--max-old-space-size=512'], '--enable-source-maps'), false);
  assert.equal(operatorSizedYoungGeneration(['--max-semi-space-size=8'], ''), true);
  assert.equal(operatorSizedYoungGeneration([], '--max_semi_space_size=8'), true);
  assert.equal(operatorSizedYoungGeneration(['--semi-space-growth-factor=2'], ''), true);
  assert.equal(operatorSizedYoungGeneration([], '--min-semi-space-size=4 --foo'), true);
});

test('snapshots list the entries in order and are never changed afterwards (set/add/delete replace the array)', () => {
  const map = new SmallMap<string, number>();
  const set = new SmallSet<string>();
  map.set('a', 1).set('b', 2);
  set.add('x').add('y');
  const [mapBefore, setBefore] = [map.flatSnapshot, set.snapshot];
  assert.deepEqual(mapBefore, ['a', 1, 'b', 2]);
  assert.deepEqual(setBefore, ['x', 'y']);
  map.set('a', 3);
  map.delete('b');
  set.delete('x');
  set.add('z');
  assert.deepEqual(mapBefore, ['a', 1, 'b', 2]);
  assert.deepEqual(setBefore, ['x', 'y']);
  assert.deepEqual(map.flatSnapshot, ['a', 3]);
  assert.deepEqual(set.snapshot, ['y', 'z']);
});
