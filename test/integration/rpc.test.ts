import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createCable, Channel } from '@anycable/core';
import { startServer, withServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { freePort } from '../helpers/tcp-proxy.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { broadcast, httpRequest, sleep } from '../helpers/http.js';
import { RpcApp, withRpcApp } from '../helpers/rpc-app.js';
import { deriveKey } from '../../src/auth/keys.js';
import type { CommandMessage, ConnectionRequest, DisconnectRequest } from '../../src/rpc/messages.js';

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');

async function welcomed(url: string, opts: ConstructorParameters<typeof RawClient>[1] = {}): Promise<RawClient> {
  const client = await RawClient.connect(url, opts);
  const welcome = (await client.next()) as { type: string };
  assert.equal(welcome.type, 'welcome');
  return client;
}

async function subscribed(client: RawClient, id: string): Promise<void> {
  client.subscribe(id);
  assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
}

describe('RPC over gRPC: the anyt scenarios', () => {
  const app = new RpcApp();
  let server: TestServer;
  before(async () => {
    const port = await app.listenGrpc();
    server = await startServer(['--secret', TEST_SECRET, '--rpc_host', `127.0.0.1:${port}`, '--headers', 'cookie,x-api-token', '--ping_interval', '1']);
    app.expectedHost = `127.0.0.1:${server.port}`;
    app.broadcast = async (stream, data) => { await broadcast(server.http, { stream, data: JSON.stringify(data) }, BROADCAST_KEY); };
  });
  after(async () => { await server.stop(); await app.stop(); });

  test('welcome comes from the Connect transmissions; every call carries sid and protov metadata', async () => {
    const client = await RawClient.connect(server.url);
    const welcome = (await client.next()) as { type: string; sid: string };
    assert.equal(welcome.type, 'welcome');
    const call = app.callsOf('Connect').find((c) => c.sid === welcome.sid);
    assert.ok(call, 'the sid in metadata is the session sid');
    assert.equal(call.protov, 'v1');
    const env = (call.request as ConnectionRequest).env;
    assert.equal(env.headers.REMOTE_ADDR, '127.0.0.1');
    await client.close();
  });

  test('pings with timestamps', async () => {
    const client = await welcomed(server.url, { ignore: [] });
    const p1 = (await client.next(2500)) as { type: string; message: number };
    const p2 = (await client.next(2500)) as { type: string; message: number };
    assert.equal(p1.type, 'ping');
    assert.ok(p2.message > p1.message);
    await client.close();
  });

  test('the request URL is absolute and carries the query', async () => {
    const client = await welcomed(`${server.url}?test=request_url`);
    const call = app.callsOf('Connect').at(-1)!;
    assert.equal((call.request as ConnectionRequest).env.url, `http://127.0.0.1:${server.port}/cable?test=request_url`);
    await client.close();
  });

  test('rejects when the required cookie is missing; accepts when it is set', async () => {
    const rejected = await RawClient.connect(`${server.url}?test=cookies`);
    assert.equal(await rejected.nextText(), '{"type":"disconnect","reason":"unauthorized","reconnect":false}');
    assert.equal((await rejected.closed).code, 1000);
    const accepted = await welcomed(`${server.url}?test=cookies`, { headers: { Cookie: 'username=john green' } });
    await accepted.close();
  });

  test('rejects when the required header is missing; accepts when it is set; other headers are not proxied', async () => {
    const rejected = await RawClient.connect(`${server.url}?test=headers`);
    assert.equal((await rejected.next() as { reason: string }).reason, 'unauthorized');
    await rejected.closed;
    const accepted = await welcomed(`${server.url}?test=headers`, { headers: { 'X-API-TOKEN': 'abc', 'X-Other': 'no' } });
    const headers = (app.callsOf('Connect').at(-1)!.request as ConnectionRequest).env.headers;
    assert.equal(headers['x-api-token'], 'abc');
    assert.equal(headers['x-other'], undefined);
    await accepted.close();
  });

  test('a rejected connection gets the disconnect reason', async () => {
    const client = await RawClient.connect(`${server.url}?test=reasons&reason=unauthorized`);
    assert.deepEqual(await client.next(), { type: 'disconnect', reason: 'unauthorized', reconnect: false });
    assert.equal((await client.closed).code, 1000);
  });

  test('Connect ERROR sends nothing and closes 1011', async () => {
    const client = await RawClient.connect(`${server.url}?test=error`);
    const closed = await client.closed;
    assert.equal(closed.code, 1011);
    assert.equal(client.frames.length, 0);
  });

  test('subscription confirmation and rejection', async () => {
    const client = await welcomed(server.url);
    await subscribed(client, identifier('AckChannel'));
    const rejected = identifier('RejectChannel');
    client.subscribe(rejected);
    assert.deepEqual(await client.next(), { identifier: rejected, type: 'reject_subscription' });
    await client.close();
  });

  test('subscribe ERROR gets reject_subscription so the client does not hang', async () => {
    const client = await welcomed(server.url);
    const id = identifier('ErrorChannel');
    client.subscribe(id);
    assert.deepEqual(await client.next(), { identifier: id, type: 'reject_subscription' });
    await client.close();
  });

  test('same channel with different params: two confirms, identifiers echoed byte for byte', async () => {
    const client = await welcomed(server.url);
    const id1 = '{"channel":"ParamsChannel","id":1}';
    const id2 = '{"id":2,"channel":"ParamsChannel"}';
    await subscribed(client, id1);
    await subscribed(client, id2);
    await client.close();
  });

  test('transmissions from subscribe arrive in order before the confirmation', async () => {
    const client = await welcomed(server.url);
    const id = identifier('TransmissionsChannel');
    client.subscribe(id);
    assert.deepEqual(await client.next(), { identifier: id, message: 'hello' });
    assert.deepEqual(await client.next(), { identifier: id, message: 'world' });
    assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
    await client.close();
  });

  test('perform with and without arguments', async () => {
    const client = await welcomed(server.url);
    const id = identifier('PerformChannel');
    await subscribed(client, id);
    client.perform(id, { action: 'tick' });
    assert.deepEqual(await client.next(), { identifier: id, message: 'tock' });
    client.perform(id, { action: 'echo', text: 'hello' });
    assert.deepEqual(await client.next(), { identifier: id, message: { response: 'hello' } });
    const call = app.callsOf('Command').at(-1)!.request as CommandMessage;
    assert.equal(call.command, 'message');
    assert.equal(call.data, JSON.stringify({ action: 'echo', text: 'hello' }));
    assert.ok(call.connection_identifiers.includes('uid'));
    await client.close();
  });

  test('channel has access to the request (connection state from Connect)', async () => {
    const client = await welcomed(`${server.url}?token=secret`);
    await subscribed(client, identifier('RequestChannel'));
    await client.close();
  });

  test('channel state is kept between commands and available in unsubscribe callbacks', async () => {
    const client = await welcomed(server.url);
    const id = identifier('StateChannel', { name: 'chipolino' });
    await subscribed(client, id);
    client.perform(id, { action: 'tick' });
    assert.deepEqual(await client.next(), { identifier: id, message: { count: 3, name: 'chipolino' } });

    const client2 = await welcomed(server.url);
    const id2 = identifier('StateChannel', { name: 'chipollone', notify_disconnect: true });
    await subscribed(client2, id2);
    await client2.close();
    assert.deepEqual(await client.next(), { identifier: id, message: { data: 'user left: chipollone' } });
    const disconnect = app.callsOf('Disconnect').at(-1)!.request as DisconnectRequest;
    assert.deepEqual(disconnect.subscriptions, [id2]);
    assert.deepEqual(JSON.parse(disconnect.env.istate[id2] ?? '{}'), { user: '{"name":"chipollone"}', count: '1', notify: '1' });
    await client.close();
  });

  test('connection state: set, read back, an empty value deletes the key', async () => {
    const client = await welcomed(server.url);
    const id = identifier('PerformChannel');
    await subscribed(client, id);
    client.perform(id, { action: 'set_cstate', key: 'color', value: 'red' });
    client.perform(id, { action: 'get_cstate' });
    assert.deepEqual(await client.next(), { identifier: id, message: { color: 'red' } });
    client.perform(id, { action: 'set_cstate', key: 'color', value: '' });
    client.perform(id, { action: 'get_cstate' });
    assert.deepEqual(await client.next(), { identifier: id, message: {} });
    await client.close();
  });

  test('broadcasts: object, custom string, JSON string (decoded once)', async () => {
    const client = await welcomed(server.url);
    const id = identifier('StreamsChannel', { streams: ['a'] });
    await subscribed(client, id);
    const object = { user_id: 1, status: 'left', meta: { connection_time: '10s' } };
    await broadcast(server.http, { stream: 'a', data: JSON.stringify(object) }, BROADCAST_KEY);
    assert.deepEqual(await client.next(), { identifier: id, message: object });
    const script = "<script>alert('Message!');</script>";
    await broadcast(server.http, { stream: 'a', data: script }, BROADCAST_KEY);
    assert.deepEqual(await client.next(), { identifier: id, message: script });
    const jsonString = '{"script":{"alert":"Message!"}}';
    await broadcast(server.http, { stream: 'a', data: JSON.stringify(jsonString) }, BROADCAST_KEY);
    assert.deepEqual(await client.next(), { identifier: id, message: jsonString });
    await client.close();
  });

  test('single stream: messages in order; none after unsubscribe', async () => {
    const client = await welcomed(server.url);
    const id = identifier('StreamsChannel', { streams: ['single'] });
    await subscribed(client, id);
    await broadcast(server.http, { stream: 'single', data: '"X"' }, BROADCAST_KEY);
    await broadcast(server.http, { stream: 'single', data: '"Y"' }, BROADCAST_KEY);
    assert.deepEqual(await client.next(), { identifier: id, message: 'X' });
    assert.deepEqual(await client.next(), { identifier: id, message: 'Y' });
    client.send({ command: 'unsubscribe', identifier: id });
    await sleep(200);
    await broadcast(server.http, { stream: 'single', data: '"Z"' }, BROADCAST_KEY);
    assert.equal(await client.nothingWithin(300), null);
    await client.close();
  });

  test('same channel with different params subscribed to one stream: one frame per identifier', async () => {
    const client = await welcomed(server.url);
    const id1 = identifier('StreamsChannel', { streams: ['dup'] });
    const id2 = identifier('StreamsChannel', { streams: ['dup'], some_param: 'test' });
    await subscribed(client, id1);
    await subscribed(client, id2);
    await broadcast(server.http, { stream: 'dup', data: '"XX"' }, BROADCAST_KEY);
    const frames = [await client.next(), await client.next()];
    assert.deepEqual(frames.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))), [
      { identifier: id1, message: 'XX' }, { identifier: id2, message: 'XX' },
    ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))));
    await client.close();
  });

  test('multiple streams; multiple clients; unsubscribing one client leaves the other', async () => {
    const c1 = await welcomed(server.url);
    const c2 = await welcomed(server.url);
    const id = identifier('StreamsChannel', { streams: ['ma', 'mb'] });
    await subscribed(c1, id);
    await subscribed(c2, id);
    await broadcast(server.http, { stream: 'ma', data: '"X"' }, BROADCAST_KEY);
    await broadcast(server.http, { stream: 'mb', data: '"Y"' }, BROADCAST_KEY);
    for (const c of [c1, c2]) {
      assert.deepEqual(await c.next(), { identifier: id, message: 'X' });
      assert.deepEqual(await c.next(), { identifier: id, message: 'Y' });
    }
    c1.send({ command: 'unsubscribe', identifier: id });
    await sleep(200);
    await broadcast(server.http, { stream: 'ma', data: '"Z"' }, BROADCAST_KEY);
    assert.deepEqual(await c2.next(), { identifier: id, message: 'Z' });
    assert.equal(await c1.nothingWithin(300), null);
    await c1.close();
    await c2.close();
  });

  test('stop streams: stopped_streams drops one stream, stop_streams all of them', async () => {
    const client = await welcomed(server.url);
    const id = identifier('StreamsChannel', { streams: ['sa', 'sb'] });
    await subscribed(client, id);
    await broadcast(server.http, { stream: 'sa', data: '"X"' }, BROADCAST_KEY);
    assert.deepEqual(await client.next(), { identifier: id, message: 'X' });
    client.perform(id, { action: 'unfollow', name: 'sa' });
    await sleep(200);
    await broadcast(server.http, { stream: 'sa', data: '"Y"' }, BROADCAST_KEY);
    await broadcast(server.http, { stream: 'sb', data: '"Z"' }, BROADCAST_KEY);
    assert.deepEqual(await client.next(), { identifier: id, message: 'Z' });
    client.perform(id, { action: 'stop_all' });
    await sleep(200);
    await broadcast(server.http, { stream: 'sb', data: '"W"' }, BROADCAST_KEY);
    assert.equal(await client.nothingWithin(300), null);
    await client.close();
  });

  test('remote disconnect closes every connection with those identifiers', async () => {
    const a = await welcomed(`${server.url}?test=uid&uid=26`);
    const b = await welcomed(`${server.url}?test=uid&uid=26`);
    const other = await welcomed(`${server.url}?test=uid&uid=27`);
    const answer = await broadcast(server.http, { command: 'disconnect', payload: { identifier: '{"uid":"26"}', reconnect: true } }, BROADCAST_KEY);
    assert.equal(answer.status, 201);
    for (const c of [a, b]) {
      assert.deepEqual(await c.next(), { type: 'disconnect', reason: 'remote', reconnect: true });
      assert.equal((await c.closed).code, 1000);
    }
    assert.equal(await other.nothingWithin(200), null);
    await other.close();
  });

  test('a command with disconnect=true sends transmissions then closes 1000 (never 1006)', async () => {
    const client = await welcomed(server.url);
    const id = identifier('PerformChannel');
    await subscribed(client, id);
    client.perform(id, { action: 'kick' });
    assert.deepEqual(await client.next(), { identifier: id, message: 'bye' });
    assert.equal((await client.closed).code, 1000);
  });

  test('disconnect callbacks run for several channels and several subscriptions of one channel', async () => {
    const client = await welcomed(server.url);
    const watchA = identifier('StreamsChannel', { streams: ['request_a'] });
    const watchB = identifier('StreamsChannel', { streams: ['request_b'] });
    await subscribed(client, watchA);
    await subscribed(client, watchB);
    const client2 = await welcomed(server.url);
    await subscribed(client2, identifier('LeaveChannel', { room: 'a' }));
    await subscribed(client2, identifier('LeaveChannel', { room: 'b' }));
    await subscribed(client2, identifier('LeaveChannel', { room: 'a', id: 1 }));
    await client2.close();
    const got = [await client.next(), await client.next(), await client.next()].map((f) => JSON.stringify(f)).sort();
    assert.deepEqual(got, [
      JSON.stringify({ identifier: watchA, message: { data: 'user left' } }),
      JSON.stringify({ identifier: watchA, message: { data: 'user left1' } }),
      JSON.stringify({ identifier: watchB, message: { data: 'user left' } }),
    ].sort());
    await client.close();
  });

  test('whisper goes to the others on the $w stream, never back to the sender', async () => {
    const a = await welcomed(server.url);
    const b = await welcomed(server.url);
    const id = identifier('StreamsChannel', { streams: ['typing'], whisper: true });
    await subscribed(a, id);
    await subscribed(b, id);
    a.send({ command: 'whisper', identifier: id, data: { event: 'typing', user: 'Vova' } });
    assert.deepEqual(await b.next(), { identifier: id, message: { event: 'typing', user: 'Vova' } });
    assert.equal(await a.nothingWithin(300), null);
    await a.close();
    await b.close();
  });

  test('broadcast to others: exclude_socket skips that sid', async () => {
    const a = await RawClient.connect(server.url);
    const sid = ((await a.next()) as { sid: string }).sid;
    const b = await welcomed(server.url);
    const id = identifier('StreamsChannel', { streams: ['others'] });
    await subscribed(a, id);
    await subscribed(b, id);
    await broadcast(server.http, { stream: 'others', data: '"hi"', meta: { exclude_socket: sid } }, BROADCAST_KEY);
    assert.deepEqual(await b.next(), { identifier: id, message: 'hi' });
    assert.equal(await a.nothingWithin(300), null);
    await a.close();
    await b.close();
  });

  test('@anycable/core: connect through RPC with a cookie, subscribe, perform, receive', async () => {
    class PerformChannel extends Channel {
      static override identifier = 'PerformChannel';
    }
    const cable = createCable(`${server.url}?test=cookies`, {
      websocketImplementation: class extends WebSocket {
        constructor(url: string, protocols: string | string[]) {
          super(url, protocols, { headers: { Cookie: 'username=john green' } });
        }
      },
      logLevel: 'error',
    });
    try {
      await cable.connect();
      const channel = new PerformChannel();
      cable.subscribe(channel);
      await channel.ensureSubscribed();
      const received = new Promise((resolve) => channel.on('message', resolve));
      await channel.perform('echo', { text: 'from core' });
      assert.deepEqual(await received, { response: 'from core' });
    } finally {
      cable.disconnect();
    }
  });
});

describe('RPC resilience', () => {
  test('app down: new connections close 1011 quickly, connected clients keep working, recovery is automatic', async () => {
    await withRpcApp(['--rpc_command_timeout', '1500', '--public_streams'], async (server, app) => {
      const connected = await welcomed(server.url);
      const pub = identifier('$pubsub', { stream_name: 'still' });
      await subscribed(connected, pub);
      await app.stop();

      const started = Date.now();
      const refused = await RawClient.connect(server.url);
      assert.equal((await refused.closed).code, 1011);
      assert.ok(Date.now() - started < 3000, 'closed within the command timeout');
      assert.ok(server.app.metrics.counters.rpc_retries_total > 0, 'UNAVAILABLE was retried');

      await broadcast(server.http, { stream: 'still', data: '"alive"' }, BROADCAST_KEY);
      assert.deepEqual(await connected.next(), { identifier: pub, message: 'alive' });

      await app.listenGrpc(app.port);
      let recovered: RawClient | null = null;
      for (let i = 0; i < 30 && !recovered; i++) {
        const attempt = await RawClient.connect(server.url);
        const first = await attempt.nextText(3000).catch(() => '');
        if (first.includes('welcome')) recovered = attempt;
        else await sleep(200);
      }
      assert.ok(recovered, 'connections succeed again once the app is back');
      await recovered.close();
      await connected.close();
      const warnLines = server.logs.records().filter((r) => r.msg === 'rpc call failed');
      assert.ok(warnLines.length >= 1 && warnLines.length <= 4, `rpc failures are rate-limited in logs (${warnLines.length})`);
    });
  });

  test('disconnect calls are flushed on shutdown; /health answers 503 meanwhile', async () => {
    await withRpcApp(['--shutdown_timeout', '5'], async (server, app) => {
      app.disconnectDelayMs = 500;
      const clients = [await welcomed(server.url), await welcomed(server.url), await welcomed(server.url)];
      const before = app.callsOf('Disconnect').length;
      const stopping = server.stop();
      const health = await httpRequest(`${server.http}/health`);
      assert.equal(health.status, 503);
      for (const c of clients) assert.equal((await c.closed).code, 1001);
      await stopping;
      assert.equal(app.callsOf('Disconnect').length - before, 3);
    });
  });

  test('at most --rpc_concurrency calls in flight; a waiting call is dropped when its client leaves', async () => {
    await withRpcApp(['--rpc_concurrency', '1'], async (server, app) => {
      app.delayMs = 400;
      const first = new RawClient(server.url);
      await first.opened;
      await sleep(50); // its Connect holds the only slot
      const waiting = new RawClient(server.url);
      await waiting.opened;
      await sleep(50);
      assert.equal(server.app.metrics.gauge('rpc_pending_num'), 1);
      await waiting.close();
      assert.equal(((await first.next()) as { type: string }).type, 'welcome');
      await sleep(100);
      assert.equal(server.app.metrics.counters.rpc_canceled_total, 1);
      assert.equal(app.callsOf('Connect').length, 1, 'the app never saw the dropped call');
      await first.close();
    });
  });

  test('--disconnect_mode never makes no Disconnect calls', async () => {
    await withRpcApp(['--disconnect_mode', 'never'], async (server, app) => {
      const client = await welcomed(server.url);
      await client.close();
      await sleep(300);
      assert.equal(app.callsOf('Disconnect').length, 0);
    });
  });
});

describe('RPC over HTTP', () => {
  const app = new RpcApp();
  let server: TestServer;
  before(async () => {
    const port = await app.listenHttp(deriveKey(TEST_SECRET, 'rpc-cable'));
    server = await startServer(['--secret', TEST_SECRET, '--rpc_host', `http://127.0.0.1:${port}/_anycable`]);
    app.broadcast = async (stream, data) => { await broadcast(server.http, { stream, data: JSON.stringify(data) }, BROADCAST_KEY); };
  });
  after(async () => { await server.stop(); await app.stop(); });

  test('connect, subscribe, perform, stream; metadata as x-anycable-meta headers; bearer from the secret', async () => {
    const client = await RawClient.connect(`${server.url}?test=cookies`, { headers: { Cookie: 'username=john green' } });
    const welcome = (await client.next()) as { sid: string };
    assert.equal(app.callsOf('Connect').at(-1)!.sid, welcome.sid);
    assert.equal(app.callsOf('Connect').at(-1)!.protov, 'v1');
    const id = identifier('StreamsChannel', { streams: ['h'] });
    await subscribed(client, id);
    client.perform(id, { action: 'echo', text: 'http' });
    assert.deepEqual(await client.next(), { identifier: id, message: { response: 'http' } });
    await broadcast(server.http, { stream: 'h', data: '"via http rpc"' }, BROADCAST_KEY);
    assert.deepEqual(await client.next(), { identifier: id, message: 'via http rpc' });
    await client.close();
    await sleep(300);
    const disconnect = app.callsOf('Disconnect').at(-1)!.request as DisconnectRequest;
    assert.deepEqual(disconnect.subscriptions, [id]);
  });

  test('a rejected connection over HTTP RPC', async () => {
    const client = await RawClient.connect(`${server.url}?test=cookies`);
    assert.deepEqual(await client.next(), { type: 'disconnect', reason: 'unauthorized', reconnect: false });
    assert.equal((await client.closed).code, 1000);
  });

  test('an unreachable HTTP RPC app is retried like UNAVAILABLE, then the connection closes 1011', async () => {
    const deadPort = await freePort();
    await withServer(['--secret', TEST_SECRET, '--rpc_host', `http://127.0.0.1:${deadPort}/_anycable`, '--rpc_command_timeout', '600'], async (other) => {
      const client = await RawClient.connect(other.url);
      assert.equal((await client.closed).code, 1011);
      assert.equal(other.app.metrics.counters.rpc_retries_total, 2, 'retried after 100 and 200 ms');
      assert.equal(other.app.metrics.counters.rpc_error_total, 1);
    });
  });

  test('a wrong HTTP RPC secret closes new connections with 1011', async () => {
    const other = await startServer(['--secret', TEST_SECRET, '--rpc_host', `http://127.0.0.1:${app.port}/_anycable`, '--http_rpc_secret', 'wrong-secret-000000000']);
    try {
      const client = await RawClient.connect(other.url);
      assert.equal((await client.closed).code, 1011);
    } finally {
      await other.stop();
    }
  });
});
