import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { presenceAction } from '../../src/presence/rpc-presence.js';
import { StreamsController } from '../../src/streams/streams-controller.js';
import { NullController } from '../../src/node/null-controller.js';
import { signStreamName } from '../../src/streams/verifier.js';
import type { CallContext } from '../../src/node/controller.js';

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
