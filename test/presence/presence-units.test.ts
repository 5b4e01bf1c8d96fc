import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { presenceAction } from '../../src/presence/rpc-presence.js';
import { StreamsController } from '../../src/streams/streams-controller.js';
import { NullController } from '../../src/node/null-controller.js';
import { signStreamName } from '../../src/streams/verifier.js';
import type { CallContext } from '../../src/node/controller.js';
import { decodeClientFrame } from '../../src/protocol/decoder.js';
import { MAX_PRESENCE_ID_LENGTH } from '../../src/presence/join-request.js';
import { joinEventJson, leaveEventJson, presenceInfoFrame } from '../../src/presence/presence-frames.js';
import { encodePublication, parsePublications, parsePublicationsText } from '../../src/broadcast/message.js';
import { Hub, type TopicSocket } from '../../src/hub/hub.js';
import { Metrics } from '../../src/metrics/metrics.js';

const ctx: CallContext = {
  sid: 'sid-1',
  request: { url: 'http://localhost/cable', headers: {}, token: '', keyUserId: null, protocol: '', restoreSid: '', pingPrecision: 's' },
  identifiers: '{}',
  cstate: {},
  signal: new AbortController().signal,
};

describe('presence flags', () => {
  test('--presence_ttl defaults to 15 s and --streams_presence to on, as anycable-go', () => {
    const { config } = loadConfig([], {});
    assert.equal(config.presenceTtlS, 15);
    assert.equal(config.streamsPresence, true);
  });

  test('flags and ANYCABLE_* env set them', () => {
    assert.equal(loadConfig(['--presence_ttl=3'], {}).config.presenceTtlS, 3);
    assert.equal(loadConfig([], { ANYCABLE_PRESENCE_TTL: '7' }).config.presenceTtlS, 7);
    assert.equal(loadConfig(['--streams_presence=false'], {}).config.streamsPresence, false);
    assert.equal(loadConfig([], { ANYCABLE_STREAMS_PRESENCE: 'false' }).config.streamsPresence, false);
  });

  test('a presence TTL below 1 s is a config error naming the flag', () => {
    assert.throws(() => loadConfig(['--presence_ttl=0'], {}), (err: unknown) => err instanceof ConfigError && /--presence_ttl: 0 is below the minimum 1/.test(err.message));
  });
});

describe('$p channel state on $pubsub streams', () => {
  const options = { publicStreams: true, streamsSecret: 'secret', streamsWhisper: false, turboStreams: false, turboStreamsSecret: 'secret' };

  test('public and signed streams name their stream as the presence stream', async () => {
    const streams = new StreamsController({ ...options, streamsPresence: true }, new NullController());
    const pub = await streams.subscribe(ctx, JSON.stringify({ channel: '$pubsub', stream_name: 'room 1' }), {});
    assert.deepEqual(pub.istate, { $w: 'room 1', $p: 'room 1' });
    const signed = await streams.subscribe(ctx, JSON.stringify({ channel: '$pubsub', signed_stream_name: signStreamName('secret', 'room 2') }), {});
    assert.deepEqual(signed.istate, { $p: 'room 2' });
  });

  test('--streams_presence=false leaves presence off', async () => {
    const streams = new StreamsController({ ...options, streamsPresence: false }, new NullController());
    const pub = await streams.subscribe(ctx, JSON.stringify({ channel: '$pubsub', stream_name: 'room 1' }), {});
    assert.deepEqual(pub.istate, { $w: 'room 1' });
    const signed = await streams.subscribe(ctx, JSON.stringify({ channel: '$pubsub', signed_stream_name: signStreamName('secret', 'room 2') }), {});
    assert.equal(signed.istate, undefined);
  });
});

describe('CommandResponse.presence', () => {
  test('join carries the id and the info as JSON text; plain strings become JSON strings', () => {
    assert.deepEqual(presenceAction({ type: 'join', id: '2024', info: '{"name":"Vova"}', ttl: 0 }), { presence: { type: 'join', id: '2024', info: '{"name":"Vova"}' } });
    assert.deepEqual(presenceAction({ type: 'join', id: '7', info: 'Vova', ttl: 0 }), { presence: { type: 'join', id: '7', info: '"Vova"' } });
    assert.deepEqual(presenceAction({ type: 'join', id: '7', info: '', ttl: 0 }), { presence: { type: 'join', id: '7', info: '' } });
  });

  test('leave needs no id; no presence, an unknown type or a join without id is no action', () => {
    assert.deepEqual(presenceAction({ type: 'leave', id: '', info: '', ttl: 0 }), { presence: { type: 'leave' } });
    assert.deepEqual(presenceAction(null), {});
    assert.deepEqual(presenceAction({ type: 'wave', id: '1', info: '', ttl: 0 }), {});
    assert.deepEqual(presenceAction({ type: 'join', id: '', info: '{}', ttl: 0 }), {});
  });
});

describe('presence frames on the wire', () => {
  test('join frames decode to a join request; a number id is text; info is kept as JSON text', () => {
    assert.deepEqual(decodeClientFrame('{"command":"join","identifier":"i","presence":{"id":"u1","info":{"a":[1,"x"]}}}'),
      { ok: true, value: { command: 'join', identifier: 'i', presence: { id: 'u1', info: '{"a":[1,"x"]}' } } });
    assert.deepEqual(decodeClientFrame('{"command":"join","identifier":"i","presence":{"id":7}}'),
      { ok: true, value: { command: 'join', identifier: 'i', presence: { id: '7', info: '' } } });
  });

  test('a join without a usable id is a decode error (bad_data)', () => {
    for (const presence of [undefined, null, 'u1', [], {}, { id: '' }, { id: null }, { id: true }, { id: {} }, { id: 'x'.repeat(MAX_PRESENCE_ID_LENGTH + 1) }, { id: Number.NaN }]) {
      const frame = JSON.stringify({ command: 'join', identifier: 'i', ...(presence === undefined ? {} : { presence }) });
      const decoded = decodeClientFrame(frame);
      assert.equal(decoded.ok, false, frame);
      assert.equal(decoded.ok ? '' : decoded.value.error, 'bad_data', frame);
    }
    assert.equal(decodeClientFrame(JSON.stringify({ command: 'join', identifier: 'i', presence: { id: 'x'.repeat(MAX_PRESENCE_ID_LENGTH) } })).ok, true);
  });

  test('leave and presence need only the identifier; subscribe carries a presence, a malformed one is ignored', () => {
    assert.deepEqual(decodeClientFrame('{"command":"leave","identifier":"i"}'), { ok: true, value: { command: 'leave', identifier: 'i' } });
    assert.deepEqual(decodeClientFrame('{"command":"presence","identifier":"i","data":{}}'), { ok: true, value: { command: 'presence', identifier: 'i' } });
    assert.deepEqual(decodeClientFrame('{"command":"subscribe","identifier":"i","presence":{"id":"u","info":1}}'),
      { ok: true, value: { command: 'subscribe', identifier: 'i', presence: { id: 'u', info: '1' } } });
    assert.deepEqual(decodeClientFrame('{"command":"subscribe","identifier":"i","presence":{"info":1}}'), { ok: true, value: { command: 'subscribe', identifier: 'i' } });
  });

  test('info and event payloads in anycable-go key order; no info field for a member without info', () => {
    assert.equal(joinEventJson('u"1', '{"n":1}'), '{"type":"join","id":"u\\"1","info":{"n":1}}');
    assert.equal(joinEventJson('u1', ''), '{"type":"join","id":"u1"}');
    assert.equal(leaveEventJson('u1'), '{"type":"leave","id":"u1"}');
    assert.equal(presenceInfoFrame('{"channel":"$pubsub"}', { total: 2, records: [{ id: 'a', info: '"x"' }, { id: 'b', info: '' }] }),
      '{"type":"presence","identifier":"{\\"channel\\":\\"$pubsub\\"}","message":{"type":"info","total":2,"records":[{"id":"a","info":"x"},{"id":"b"}]}}');
  });

  test('between nodes a presence event keeps meta.broadcast_type and is transient; an app may send one too', () => {
    const event = { kind: 'broadcast' as const, stream: 's', data: '{"type":"leave","id":"u1"}', excludeSocket: null, transient: true, presence: true };
    const wire = encodePublication(event);
    assert.deepEqual(JSON.parse(wire), { stream: 's', data: '{"type":"leave","id":"u1"}', meta: { transient: true, broadcast_type: 'presence' } });
    const parsed = parsePublicationsText(wire, true);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.items[0], event);
    const fromApp = parsePublications({ stream: 's', data: { type: 'join', id: 'x' }, meta: { broadcast_type: 'presence' } });
    assert.ok(fromApp.ok);
    assert.deepEqual(fromApp.items[0], { kind: 'broadcast', stream: 's', data: '{"type":"join","id":"x"}', excludeSocket: null, transient: true, presence: true });
  });

  test('the hub frames a presence event once per identifier of the stream and counts each receiver', () => {
    const published: Array<[string, string]> = [];
    const metrics = new Metrics();
    const hub = new Hub({ publish: (topic, frame) => { published.push([topic, frame]); return true; } }, metrics, { onStreamAdded: () => undefined, onStreamRemoved: () => undefined });
    const socket = (): TopicSocket => {
      const topics = new Set<string>();
      return { subscribe: (t) => !topics.has(t) && !!topics.add(t), unsubscribe: (t) => topics.delete(t), isSubscribed: (t) => topics.has(t), publish: () => true };
    };
    hub.subscribe(socket(), 's', 'id-a');
    hub.subscribe(socket(), 's', 'id-a');
    hub.subscribe(socket(), 's', 'id-b');
    hub.subscribe(socket(), 'other', 'id-a');
    hub.broadcastPresence('s', '{"type":"leave","id":"u1"}');
    assert.deepEqual(published, [
      ['["s","id-a"]', '{"type":"presence","identifier":"id-a","message":{"type":"leave","id":"u1"}}'],
      ['["s","id-b"]', '{"type":"presence","identifier":"id-b","message":{"type":"leave","id":"u1"}}'],
    ]);
    assert.equal(metrics.counters.server_msg_total, 3);
    hub.broadcastPresence('nobody-here', '{"type":"leave","id":"u1"}');
    assert.equal(published.length, 2);
  });
});
