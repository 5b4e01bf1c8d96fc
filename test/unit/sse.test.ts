import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { encodeEvent, parseLastEventId, RETRY_NO_RECONNECT_MS } from '../../src/sse/sse-encoder.js';
import { commandsFromBody, commandsFromQuery } from '../../src/sse/sse-request.js';
import { SseTopics, type SseSubscriber } from '../../src/sse/sse-topics.js';

describe('SSE encoding', () => {
  test('protocol messages are typed events with the whole frame; data messages are untyped', () => {
    assert.equal(encodeEvent('{"type":"welcome","sid":"s"}', true), 'event: welcome\ndata: {"type":"welcome","sid":"s"}\n\n');
    assert.equal(encodeEvent('{"type":"ping","message":5}', true), 'event: ping\ndata: {"type":"ping","message":5}\n\n');
    assert.equal(encodeEvent('{"identifier":"i","message":{"a":1}}', false), 'data: {"identifier":"i","message":{"a":1}}\n\n');
    assert.equal(encodeEvent('{"identifier":"i","message":{"a":1}}', true), 'data: {"a":1}\n\n');
    assert.equal(encodeEvent('{"identifier":"i","message":"text"}', true), 'data: text\n\n');
    assert.equal(encodeEvent('{"identifier":"i","message":null}', true), 'data: null\n\n');
  });

  test('a position becomes id: offset/epoch/stream; offset 0 or a missing part gives no id', () => {
    const frame = '{"identifier":"i","message":1,"stream_id":"s/1","epoch":"e","offset":7}';
    assert.equal(encodeEvent(frame, true), 'data: 1\nid: 7/e/s/1\n\n');
    assert.equal(encodeEvent('{"identifier":"i","message":1,"stream_id":"s","epoch":"e","offset":0}', true), 'data: 1\n\n');
    assert.equal(encodeEvent('{"identifier":"i","message":1,"epoch":"e","offset":3}', true), 'data: 1\n\n');
  });

  test('disconnect with reconnect:false adds a year-long retry; line breaks split data lines', () => {
    assert.equal(encodeEvent('{"type":"disconnect","reason":"remote","reconnect":false}', true),
      `event: disconnect\ndata: {"type":"disconnect","reason":"remote","reconnect":false}\nretry: ${RETRY_NO_RECONNECT_MS}\n\n`);
    assert.equal(encodeEvent('{"type":"disconnect","reason":"server_restart","reconnect":true}', true),
      'event: disconnect\ndata: {"type":"disconnect","reason":"server_restart","reconnect":true}\n\n');
    assert.equal(encodeEvent('{"identifier":"i","message":"a\\nb\\r\\nc\\rd"}', true), 'data: a\ndata: b\ndata: c\ndata: d\n\n');
  });

  test('Last-Event-ID: offset/epoch/stream (the stream may contain slashes); anything else is no position', () => {
    assert.deepEqual(parseLastEventId('12/ep/chat/1'), { offset: 12, epoch: 'ep', stream: 'chat/1' });
    for (const bad of ['', '12', '12/ep', 'x/ep/s', '-1/ep/s', '1//s', '1/ep/', '9999999999999999/e/s']) assert.equal(parseLastEventId(bad), null, bad);
  });
});

describe('SSE requests', () => {
  test('GET: identifier, channel, stream, signed_stream, turbo name, in that order of preference; history parts', () => {
    const q = (s: string): URLSearchParams => new URLSearchParams(s);
    const only = (query: string, lastEventId = ''): unknown => {
      const r = commandsFromQuery(q(query), lastEventId);
      return r.ok ? JSON.parse(r.frames[0]?.text ?? '') : r.error;
    };
    assert.deepEqual(only('identifier=%7B%22channel%22%3A%22A%22%7D&channel=B'), { command: 'subscribe', identifier: '{"channel":"A"}' });
    assert.deepEqual(only('channel=B&stream=s'), { command: 'subscribe', identifier: '{"channel":"B"}' });
    assert.deepEqual(only('stream=s&signed_stream=x'), { command: 'subscribe', identifier: '{"channel":"$pubsub","stream_name":"s"}' });
    assert.deepEqual(only('signed_stream=x'), { command: 'subscribe', identifier: '{"channel":"$pubsub","signed_stream_name":"x"}' });
    assert.deepEqual(only('turbo_signed_stream_name=t'), { command: 'subscribe', identifier: '{"channel":"Turbo::StreamsChannel","signed_stream_name":"t"}' });
    assert.deepEqual(only('stream=s&history_since=100', '4/e/s'),
      { command: 'subscribe', identifier: '{"channel":"$pubsub","stream_name":"s"}', history: { since: 100, streams: { s: { epoch: 'e', offset: 4 } } } });
    assert.equal((only('') as { error: string }).error, 'no_channel');
    assert.equal((only('stream=s&history_since=1.5') as { error: string }).error, 'bad_history_since');
  });

  test('POST: subscribe lines only, duplicates once, own history kept, at least one command', () => {
    const sub = (identifier: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ command: 'subscribe', identifier, ...extra });
    const r = commandsFromBody(`${sub('a')}\n\n${sub('b', { history: { since: 5 } })}\n${sub('a')}\n`, new URLSearchParams('history_since=9'), '');
    assert.ok(r.ok);
    assert.deepEqual(r.frames.map((f) => JSON.parse(f.text)), [
      { command: 'subscribe', identifier: 'a', history: { since: 9 } },
      { command: 'subscribe', identifier: 'b', history: { since: 5 } },
    ]);
    for (const body of ['', '\n', 'nope', '[]', JSON.stringify({ command: 'message', identifier: 'a', data: '{}' }), JSON.stringify({ command: 'subscribe', identifier: '' })]) {
      const bad = commandsFromBody(body, new URLSearchParams(), '');
      assert.ok(!bad.ok && bad.error.status === '400 Bad Request', body);
    }
  });
});

describe('SSE topic index', () => {
  test('delivers each subscriber its form (unwrapped or whole), skips the excluded one, and forgets empty topics', () => {
    const got: string[] = [];
    const sub = (name: string, unwrap: boolean): SseSubscriber => ({ unwrap, writeEvent: (e) => got.push(`${name}:${e}`) });
    const [a, b, c] = [sub('a', true), sub('b', false), sub('c', true)];
    const topics = new SseTopics();
    assert.equal(topics.size, 0);
    for (const s of [a, b, c]) assert.equal(topics.add('t', s), true);
    assert.equal(topics.add('t', a), false);
    topics.publish('t', '{"identifier":"i","message":1}', c);
    assert.deepEqual(got, ['a:data: 1\n\n', 'b:data: {"identifier":"i","message":1}\n\n']);
    for (const s of [a, b, c]) topics.remove('t', s);
    assert.equal(topics.size, 0);
    assert.equal(topics.remove('t', a), false);
  });
});
