import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { connect as natsConnect } from 'nats';
import { startServer, withServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { broadcast, httpRequest, sleep } from '../helpers/http.js';
import { waitUntil } from '../helpers/wait.js';
import { TcpProxy, freePort } from '../helpers/tcp-proxy.js';
import { signToken } from '../helpers/tokens.js';
import { signStreamName } from '../../src/streams/verifier.js';
import { deriveKey } from '../../src/auth/keys.js';
import { streamSubscriber } from '../helpers/streams.js';

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');
const API_KEY = deriveKey(TEST_SECRET, 'api-cable');


describe('HTTP broadcasting on one node', () => {
  let server: TestServer;
  let token: string;
  before(async () => {
    server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--http_broadcast_max_body', '2048', '--ws_max_pending_size', '65536']);
    token = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
  });
  after(() => server.stop());

  test('one object and a batch are delivered in order with 201', async () => {
    const { client, id } = await streamSubscriber(server, 'news', token);
    assert.equal((await broadcast(server.http, { stream: 'news', data: '{"n":1}' }, BROADCAST_KEY)).status, 201);
    const batch = await broadcast(server.http, [{ stream: 'news', data: '{"n":2}' }, { stream: 'other', data: '"x"' }, { stream: 'news', data: '{"n":3}' }], BROADCAST_KEY);
    assert.equal(batch.status, 201);
    for (const n of [1, 2, 3]) assert.deepEqual(await client.next(), { identifier: id, message: { n } });
    await client.close();
  });

  test('the API key is accepted too; a wrong or missing key gets 401 invalid_credentials', async () => {
    assert.equal((await broadcast(server.http, { stream: 's', data: '1' }, API_KEY)).status, 201);
    for (const key of ['wrong', undefined]) {
      const answer = await broadcast(server.http, { stream: 's', data: '1' }, key);
      assert.equal(answer.status, 401);
      assert.deepEqual(answer.json(), { error: 'invalid_credentials' });
    }
  });

  const invalid: Array<[string, string]> = [
    ['unparseable JSON', '{"stream":'],
    ['a JSON string', '"hello"'],
    ['an object without stream', '{"data":"1"}'],
    ['a stream that is not a string', '{"stream":5,"data":"1"}'],
    ['an empty batch', '[]'],
    ['a batch with one bad entry', '[{"stream":"a","data":"1"},{"nope":1}]'],
    ['an unknown command', '{"command":"explode","payload":{}}'],
    ['a disconnect without identifier', '{"command":"disconnect","payload":{}}'],
  ];
  for (const [name, body] of invalid) {
    test(`${name} gets 422 with a JSON error and is counted`, async () => {
      const before = server.app.metrics.counters.failed_broadcast_msg_total;
      const answer = await broadcast(server.http, body, BROADCAST_KEY);
      assert.equal(answer.status, 422);
      assert.equal((answer.json() as { error: string }).error, 'invalid_payload');
      assert.equal(server.app.metrics.counters.failed_broadcast_msg_total, before + 1);
    });
  }

  test('a body over the limit gets 413', async () => {
    const answer = await broadcast(server.http, { stream: 's', data: JSON.stringify('x'.repeat(4000)) }, BROADCAST_KEY);
    assert.equal(answer.status, 413);
    assert.equal((answer.json() as { error: string }).error, 'payload_too_large');
  });

  test('other methods get 405 and other paths 404', async () => {
    assert.equal((await httpRequest(`${server.http}/_broadcast`)).status, 405);
    assert.equal((await httpRequest(`${server.http}/_broadcast`, { method: 'PUT' })).status, 405);
    const missing = await httpRequest(`${server.http}/nowhere`, { method: 'POST' });
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json(), { error: 'not_found' });
  });

  test('a client that aborts mid-body does not hurt the server', async () => {
    const { Socket } = await import('node:net');
    const socket = new Socket();
    await new Promise<void>((resolve) => socket.connect(server.port, '127.0.0.1', resolve));
    socket.write(`POST /_broadcast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${BROADCAST_KEY}\r\nContent-Length: 1000\r\n\r\n{"stream":`);
    await sleep(50);
    socket.destroy();
    await sleep(50);
    assert.equal((await httpRequest(`${server.http}/health`)).status, 200);
  });

  test('signed streams: a valid signature is confirmed, a forged one rejected', async () => {
    const client = await RawClient.connect(`${server.url}?jid=${token}`);
    await client.next();
    const good = identifier('$pubsub', { signed_stream_name: signStreamName(TEST_SECRET, 'private') });
    const bad = identifier('$pubsub', { signed_stream_name: signStreamName('other-secret', 'private') });
    client.subscribe(good);
    assert.deepEqual(await client.next(), { identifier: good, type: 'confirm_subscription' });
    client.subscribe(bad);
    assert.deepEqual(await client.next(), { identifier: bad, type: 'reject_subscription' });
    await broadcast(server.http, { stream: 'private', data: '"secret"' }, BROADCAST_KEY);
    assert.deepEqual(await client.next(), { identifier: good, message: 'secret' });
    await client.close();
  });

});

describe('whispers and Turbo Streams without RPC', () => {
  async function pair(server: TestServer, id: string): Promise<[RawClient, RawClient]> {
    const token = await signToken(TEST_SECRET, { ext: '{"user_id":"w"}' }, { expiresIn: 300 });
    const clients: RawClient[] = [];
    for (let i = 0; i < 2; i++) {
      const c = await RawClient.connect(`${server.url}?jid=${token}`);
      await c.next();
      c.subscribe(id);
      assert.deepEqual(await c.next(), { identifier: id, type: 'confirm_subscription' });
      clients.push(c);
    }
    return [clients[0]!, clients[1]!];
  }

  test('public streams always allow whispers; signed streams only with --streams_whisper', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--public_streams'], async (server) => {
      const publicId = identifier('$pubsub', { stream_name: 'room' });
      const [a, b] = await pair(server, publicId);
      a.send({ command: 'whisper', identifier: publicId, data: { typing: true } });
      assert.deepEqual(await b.next(), { identifier: publicId, message: { typing: true } });
      assert.equal(await a.nothingWithin(200), null, 'never back to the sender');

      const signedId = identifier('$pubsub', { signed_stream_name: signStreamName(TEST_SECRET, 'private-room') });
      const [c, d] = await pair(server, signedId);
      const dropped = server.app.metrics.counters.failed_client_msg_total;
      c.send({ command: 'whisper', identifier: signedId, data: { typing: true } });
      assert.equal(await d.nothingWithin(300), null);
      assert.equal(server.app.metrics.counters.failed_client_msg_total, dropped + 1);
      for (const x of [a, b, c, d]) await x.close();
    });
    await withServer(['--secret', TEST_SECRET, '--norpc', '--streams_whisper'], async (server) => {
      const signedId = identifier('$pubsub', { signed_stream_name: signStreamName(TEST_SECRET, 'private-room') });
      const [c, d] = await pair(server, signedId);
      c.send({ command: 'whisper', identifier: signedId, data: { typing: true } });
      assert.deepEqual(await d.next(), { identifier: signedId, message: { typing: true } });
      await c.close();
      await d.close();
    });
  });

  test('--turbo_streams verifies Turbo::StreamsChannel signed names in the server', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--turbo_streams', '--turbo_streams_secret', 'turbo-secret-0123456789'], async (server) => {
      const good = identifier('Turbo::StreamsChannel', { signed_stream_name: signStreamName('turbo-secret-0123456789', 'gid://app/Room/1') });
      const [a, b] = await pair(server, good);
      await broadcast(server.http, { stream: 'gid://app/Room/1', data: JSON.stringify('<turbo-stream action="append"></turbo-stream>') }, BROADCAST_KEY);
      for (const c of [a, b]) assert.deepEqual(await c.next(), { identifier: good, message: '<turbo-stream action="append"></turbo-stream>' });
      const forged = identifier('Turbo::StreamsChannel', { signed_stream_name: signStreamName(TEST_SECRET, 'gid://app/Room/1') });
      a.subscribe(forged);
      assert.deepEqual(await a.next(), { identifier: forged, type: 'reject_subscription' });
      await a.close();
      await b.close();
    });
  });
});

describe('slow consumers', () => {
  let server: TestServer;
  let token: string;
  before(async () => {
    server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--ws_max_pending_size', '65536']);
    token = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
  });
  after(() => server.stop());

  test('a slow consumer is disconnected with too_slow while others keep receiving', async () => {
    const fast = await streamSubscriber(server, 'firehose', token);
    const slow = await streamSubscriber(server, 'firehose', token);
    // Stop reading on the slow client's socket: its server-side buffer fills up.
    slow.client.pauseReading();
    const chunk = JSON.stringify('y'.repeat(16 * 1024));
    const before = server.app.metrics.counters.disconnected_slow_clients_total;
    let fastReceived = 0;
    // Reading resumes as soon as the server evicts: uWS gives a closing socket only a few seconds to
    // take its close frame, and on a busy machine the rest of the loop can take longer (1006).
    const resumeOnEviction = (): void => {
      if (server.app.metrics.counters.disconnected_slow_clients_total > before) slow.client.resumeReading();
    };
    for (let i = 0; i < 800; i++) {
      await broadcast(server.http, { stream: 'firehose', data: chunk }, BROADCAST_KEY);
      await sleep(1);
      // Pings count as nothing: on a busy machine the loop can outlast a ping interval.
      fastReceived += fast.client.frames.splice(0).filter((f) => !f.startsWith('{"type":"ping"')).length;
      resumeOnEviction();
    }
    for (let i = 0; i < 30 && server.app.metrics.counters.disconnected_slow_clients_total === before; i++) await sleep(100);
    assert.equal(server.app.metrics.counters.disconnected_slow_clients_total, before + 1);
    slow.client.resumeReading();
    const closed = await slow.client.closed;
    assert.equal(closed.code, 1000);
    assert.ok(slow.client.frames.includes('{"type":"disconnect","reason":"too_slow","reconnect":true}'));
    await sleep(200);
    fastReceived += fast.client.frames.filter((f) => !f.startsWith('{"type":"ping"')).length;
    assert.equal(fastReceived, 800, 'the fast client got every message');
    await fast.client.close();
  });
});

describe('Redis and NATS broadcast adapters', () => {
  test('a message PUBLISHed on __anycable__ reaches subscribers; the subscription survives a dropped connection', async () => {
    const proxy = new TcpProxy(6379);
    const proxyPort = await proxy.start();
    const channel = `__anycable_test_${process.pid}__`;
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broadcast_adapter', 'http,redis',
      '--redis_url', `redis://127.0.0.1:${proxyPort}`, '--redis_channel', channel]);
    const redis = new Redis('redis://127.0.0.1:6379');
    try {
      const token = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
      const { client, id } = await streamSubscriber(server, 'redis-stream', token);
      await waitUntil(async () => (await redis.pubsub('NUMSUB', channel))[1] === 1, 'the node subscribed the channel', 8000);
      await redis.publish(channel, JSON.stringify({ stream: 'redis-stream', data: '"one"' }));
      assert.deepEqual(await client.next(), { identifier: id, message: 'one' });
      proxy.cut();
      await waitUntil(async () => server.app.metrics.counters.broker_reconnects_total >= 1, 'the node reconnected to Redis', 8000);
      await waitUntil(async () => (await redis.pubsub('NUMSUB', channel))[1] === 1, 'the node subscribed the channel again', 8000);
      await redis.publish(channel, JSON.stringify({ stream: 'redis-stream', data: '"two"' }));
      assert.deepEqual(await client.next(), { identifier: id, message: 'two' });
      assert.ok(server.logs.records().some((r) => r.msg === 'reconnected to redis'));
      await client.close();
    } finally {
      redis.disconnect();
      await server.stop();
      await proxy.stop();
    }
  });

  test('a message on the NATS subject reaches subscribers; the subscription survives a dropped connection', async () => {
    const proxy = new TcpProxy(4222);
    const proxyPort = await proxy.start();
    const subject = `anycable_test_${process.pid}`;
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broadcast_adapter', 'nats',
      '--nats_servers', `nats://127.0.0.1:${proxyPort}`, '--nats_channel', subject]);
    const nats = await natsConnect({ servers: 'nats://127.0.0.1:4222' });
    try {
      const token = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
      const { client, id } = await streamSubscriber(server, 'nats-stream', token);
      // The server connects to NATS in the background; core NATS keeps nothing for late subscribers.
      await waitUntil(async () => server.app.metrics.gauge('broker_connected') === 1, 'the node is connected to NATS', 8000);
      await sleep(200);
      nats.publish(subject, new TextEncoder().encode(JSON.stringify({ stream: 'nats-stream', data: '"one"' })));
      assert.deepEqual(await client.next(), { identifier: id, message: 'one' });
      proxy.cut();
      await waitUntil(async () => server.app.metrics.counters.broker_reconnects_total >= 1, 'the node reconnected to NATS', 8000);
      await sleep(200);
      nats.publish(subject, new TextEncoder().encode(JSON.stringify({ stream: 'nats-stream', data: '"two"' })));
      assert.deepEqual(await client.next(), { identifier: id, message: 'two' });
      await client.close();
    } finally {
      await nats.close();
      await server.stop();
      await proxy.stop();
    }
  });
});

for (const kind of ['redis', 'nats'] as const) {
  describe(`two nodes with --pubsub=${kind}`, () => {
    test('a broadcast into either node reaches clients on both, exactly once; remote disconnect reaches every node', async () => {
      const proxy = new TcpProxy(kind === 'redis' ? 6379 : 4222);
      const proxyPort = await proxy.start();
      const brokerFlag = kind === 'redis' ? ['--redis_url', `redis://127.0.0.1:${proxyPort}`] : ['--nats_servers', `nats://127.0.0.1:${proxyPort}`];
      const common = ['--secret', TEST_SECRET, '--norpc', '--public_streams', '--pubsub', kind, ...brokerFlag];
      const node1 = await startServer(common);
      const node2 = await startServer(common);
      try {
        // Unique: every test run on this machine shares the brokers' remote-command channel.
        const user = JSON.stringify({ user_id: `multi-${kind}-${process.pid}-${Date.now()}` });
        const token = await signToken(TEST_SECRET, { ext: user }, { expiresIn: 300 });
        const stream = `multi-${kind}-${process.pid}`;
        const a = await streamSubscriber(node1, stream, token);
        const b = await streamSubscriber(node2, stream, token);
        await sleep(300);
        await broadcast(node1.http, { stream, data: '"from-1"' }, BROADCAST_KEY);
        await broadcast(node2.http, { stream, data: '"from-2"' }, BROADCAST_KEY);
        for (const s of [a, b]) {
          const got = [await s.client.next(), await s.client.next()].map((f) => (f as { message: string }).message).sort();
          assert.deepEqual(got, ['from-1', 'from-2']);
          assert.equal(await s.client.nothingWithin(300), null, 'no duplicates');
        }
        proxy.cut();
        await waitUntil(async () => node1.app.metrics.counters.broker_reconnects_total >= 1 && node2.app.metrics.counters.broker_reconnects_total >= 1, 'both nodes reconnected', 8000);
        await sleep(300);
        await broadcast(node2.http, { stream, data: '"after-cut"' }, BROADCAST_KEY);
        assert.deepEqual(await a.client.next(), { identifier: a.id, message: 'after-cut' });
        assert.deepEqual(await b.client.next(), { identifier: b.id, message: 'after-cut' });

        await broadcast(node1.http, { command: 'disconnect', payload: { identifier: user, reconnect: false } }, BROADCAST_KEY);
        for (const s of [a, b]) {
          assert.deepEqual(await s.client.next(), { type: 'disconnect', reason: 'remote', reconnect: false });
          assert.equal((await s.client.closed).code, 1000);
        }
      } finally {
        await node1.stop();
        await node2.stop();
        await proxy.stop();
      }
    });
  });
}

for (const kind of ['redis', 'nats'] as const) {
  test(`with --pubsub=${kind} down at start: the server starts, accepts broadcasts, and delivers them once the broker is up`, async () => {
    const port = await freePort();
    const brokerFlag = kind === 'redis' ? ['--redis_url', `redis://127.0.0.1:${port}`] : ['--nats_servers', `nats://127.0.0.1:${port}`];
    const proxy = new TcpProxy(kind === 'redis' ? 6379 : 4222);
    await withServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--pubsub', kind, ...brokerFlag], async (server) => {
      try {
        const token = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
        const stream = `late-${kind}-${process.pid}`;
        const { client, id } = await streamSubscriber(server, stream, token);
        assert.equal((await broadcast(server.http, { stream, data: '"held"' }, BROADCAST_KEY)).status, 201);
        assert.equal(await client.nothingWithin(200), null, 'nothing can be delivered without the broker');
        await proxy.start(port);
        assert.deepEqual(await client.next(10_000), { identifier: id, message: 'held' });
        await client.close();
      } finally {
        await proxy.stop();
      }
    });
  });
}
