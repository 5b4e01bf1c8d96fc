// The upgrade's query scan must read exactly what URLSearchParams#get reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { queryParam } from '../../src/server/request-info.js';

test('queryParam agrees with URLSearchParams#get on random queries (seeded), escapes and repeats included', () => {
  const piece = fc.constantFrom('jid', 'pi', 'token', 'j', 'jidx', '', '=', '&', '%', '%6A', '+', 'a', 'b.c', '%zz', '1');
  const query = fc.array(piece, { maxLength: 12 }).map((parts) => parts.join(''));
  fc.assert(fc.property(query, fc.constantFrom('jid', 'pi', 'token'), (q, name) => {
    assert.equal(queryParam(q, name), new URLSearchParams(q).get(name), `query ${JSON.stringify(q)} name ${name}`);
  }), { seed: 15, numRuns: 3000 });
  assert.equal(queryParam('a=1&jid=x.y.z&pi=3', 'jid'), 'x.y.z');
  assert.equal(queryParam('jid&pi=', 'jid'), '');
  assert.equal(queryParam('pi=', 'pi'), '');
  assert.equal(queryParam('xjid=1', 'jid'), null);
});
