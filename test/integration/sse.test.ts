import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { startServer, withServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { broadcast, sleep } from '../helpers/http.js';
import { waitUntil } from '../helpers/wait.js';
import { signToken } from '../helpers/tokens.js';
import { SseStream } from '../helpers/sse-stream.js';
import { withRpcApp } from '../helpers/rpc-app.js';
import { signStreamName } from '../../src/streams/verifier.js';
import { deriveKey } from '../../src/auth/keys.js';
import { VERSION } from '../../src/version.js';

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');
const suffix = (): string => Math.random().toString(36).slice(2, 10);
const pubsubId = (stream: string): string => identifier('$pubsub', { stream_name: stream });

/** `promise`, or a failure naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, what: string, ms = 3000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

async function openStream(server: TestServer, path: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const stream = await SseStream.open(server.port, path, { headers });
  assert.equal(stream.status, 200, `status of ${path}: ${stream.body}`);
  const welcome = await stream.next();
  assert.equal(welcome.event, 'welcome');
  assert.equal(welcome.data, JSON.stringify({ type: 'welcome', sid: (JSON.parse(welcome.data) as { sid: string }).sid }));
  return stream;
}

describe('SSE: streams, auth, events', () => {
  let server: TestServer;
  let token: string;
  before(async () => {
    server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--sse', '--allowed_origins', 'app.example.com,*.trusted.io']);
    token = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
  });
  after(() => server.stop());

  /** A WebSocket client of the same user, past its welcome and subscribed to stream `name`. */
  async function wsSubscribed(name: string): Promise<RawClient> {
    const ws = await RawClient.connect(`${server.url}?jid=${token}`);
    assert.equal(((await ws.next()) as { type: string }).type, 'welcome');
    ws.subscribe(pubsubId(name));
    assert.deepEqual(await ws.next(), { identifier: pubsubId(name), type: 'confirm_subscription' });
    return ws;
  }

  test('GET ?stream= streams exact bytes: stream headers, welcome, confirm, then unwrapped broadcasts', async () => {
    const name = `news_${suffix()}`;
    const stream = await SseStream.open(server.port, `/events?stream=${name}&jid=${token}`);
    assert.equal(stream.statusLine, 'HTTP/1.1 200 OK');
    assert.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(stream.headers['cache-control'], 'private, no-cache, no-store, must-revalidate, max-age=0');
    assert.equal(stream.headers['transfer-encoding'], 'chunked');
    assert.equal(stream.headers['x-anycable-version'], VERSION);
    assert.equal(stream.headers['x-accel-buffering'], 'no');
    const welcome = await stream.next();
    const sid = (JSON.parse(welcome.data) as { sid: string }).sid;
    const id = pubsubId(name);
    await stream.next();
    assert.equal(stream.body, `event: welcome\ndata: {"type":"welcome","sid":"${sid}"}\n\n` +
      `event: confirm_subscription\ndata: ${JSON.stringify({ identifier: id, type: 'confirm_subscription' })}\n\n`);
    assert.equal((await broadcast(server.http, { stream: name, data: '{"n":1}' }, BROADCAST_KEY)).status, 201);
    assert.equal((await broadcast(server.http, { stream: name, data: '"two"' }, BROADCAST_KEY)).status, 201);
    assert.deepEqual(await stream.next(), { event: '', data: '{"n":1}', id: null, retry: null, raw: 'data: {"n":1}' });
    assert.deepEqual(await stream.next(), { event: '', data: 'two', id: null, retry: null, raw: 'data: two' });
    stream.close();
  });

  test('POST with JSONL subscribes to several channels; events are whole protocol messages unless raw=1', async () => {
    const [a, b] = [`a_${suffix()}`, `b_${suffix()}`];
    const body = `${JSON.stringify({ command: 'subscribe', identifier: pubsubId(a) })}\n\n${JSON.stringify({ command: 'subscribe', identifier: pubsubId(b) })}\n`;
    const stream = await SseStream.open(server.port, `/events?jid=${token}`, { method: 'POST', body, headers: { 'Content-Type': 'application/x-ndjson' } });
    assert.equal(stream.status, 200);
    assert.equal((await stream.next()).event, 'welcome');
    assert.equal((await stream.next()).data, JSON.stringify({ identifier: pubsubId(a), type: 'confirm_subscription' }));
    assert.equal((await stream.next()).data, JSON.stringify({ identifier: pubsubId(b), type: 'confirm_subscription' }));
    await broadcast(server.http, [{ stream: b, data: '{"x":2}' }, { stream: a, data: '{"x":1}' }], BROADCAST_KEY);
    assert.equal((await stream.next()).raw, `data: {"identifier":${JSON.stringify(pubsubId(b))},"message":{"x":2}}`);
    assert.equal((await stream.next()).raw, `data: {"identifier":${JSON.stringify(pubsubId(a))},"message":{"x":1}}`);
    stream.close();

    const raw = await SseStream.open(server.port, `/events?raw=1&jid=${token}`, { method: 'POST', body: JSON.stringify({ command: 'subscribe', identifier: pubsubId(a) }) });
    await raw.nextOf('confirm_subscription');
    await broadcast(server.http, { stream: a, data: '{"x":3}' }, BROADCAST_KEY);
    assert.equal((await raw.next()).raw, 'data: {"x":3}');
    raw.close();
  });

  test('channel, identifier, signed_stream and turbo_signed_stream_name name the subscription', async () => {
    const name = `signed_${suffix()}`;
    const signed = signStreamName(TEST_SECRET, name);
    const bySigned = await openStream(server, `/events?signed_stream=${encodeURIComponent(signed)}&jid=${token}`);
    assert.equal(JSON.parse((await bySigned.next()).data).identifier, identifier('$pubsub', { signed_stream_name: signed }));
    const byIdentifier = await openStream(server, `/events?identifier=${encodeURIComponent(pubsubId(name))}&jid=${token}`);
    assert.equal(JSON.parse((await byIdentifier.next()).data).identifier, pubsubId(name));
    await broadcast(server.http, { stream: name, data: '{"k":"v"}' }, BROADCAST_KEY);
    assert.equal((await bySigned.next()).data, '{"k":"v"}');
    assert.equal((await byIdentifier.next()).data, '{"k":"v"}');
    bySigned.close();
    byIdentifier.close();
    // No RPC here: a plain channel is rejected by the app side (none), so 400.
    const byChannel = await SseStream.open(server.port, `/events?channel=ChatChannel&jid=${token}`);
    await byChannel.ended;
    assert.equal(byChannel.status, 400);
    assert.deepEqual(byChannel.json(), { error: 'subscription_rejected' });
  });

  test('an SSE client and a WebSocket client of one stream get the same messages in the same order', async () => {
    const name = `mixed_${suffix()}`;
    const sse = await openStream(server, `/events?stream=${name}&raw=0&jid=${token}`);
    await sse.next();
    const ws = await wsSubscribed(name);
    const batch = Array.from({ length: 50 }, (_, n) => ({ stream: name, data: JSON.stringify({ n }) }));
    await broadcast(server.http, batch.slice(0, 25), BROADCAST_KEY);
    await broadcast(server.http, batch.slice(25), BROADCAST_KEY);
    for (let n = 0; n < 50; n++) {
      const frame = await ws.nextText();
      assert.equal((await sse.next()).data, frame, `message ${n}`);
      assert.equal(frame, `{"identifier":${JSON.stringify(pubsubId(name))},"message":{"n":${n}}}`);
    }
    sse.close();
    await ws.close();
  });

  test('a WebSocket client\'s whisper reaches SSE subscribers of the stream, never the whisperer', async () => {
    const name = `whisper_${suffix()}`;
    const id = pubsubId(name);
    const sse = await openStream(server, `/events?stream=${name}&raw=0&jid=${token}`);
    await sse.nextNonPing();
    const [a, b] = [await wsSubscribed(name), await wsSubscribed(name)];
    a.send({ command: 'whisper', identifier: id, data: { typing: 'a' } });
    const frame = `{"identifier":${JSON.stringify(id)},"message":{"typing":"a"}}`;
    assert.equal(await b.nextText(), frame);
    assert.equal((await sse.nextNonPing()).data, frame);
    assert.equal(await a.nothingWithin(200), null, 'never back to the sender');
    sse.close();
    for (const c of [a, b]) await c.close();
  });

  test('meta.exclude_socket naming an SSE session skips that stream only; WebSocket and other SSE clients get it', async () => {
    const name = `exclude_${suffix()}`;
    const excluded = await SseStream.open(server.port, `/events?stream=${name}&jid=${token}`);
    const sid = (JSON.parse((await excluded.next()).data) as { sid: string }).sid;
    await excluded.nextNonPing();
    const other = await openStream(server, `/events?stream=${name}&jid=${token}`);
    await other.nextNonPing();
    const ws = await wsSubscribed(name);
    await broadcast(server.http, { stream: name, data: '{"n":1}', meta: { exclude_socket: sid } }, BROADCAST_KEY);
    await broadcast(server.http, { stream: name, data: '{"n":2}' }, BROADCAST_KEY);
    assert.equal((await other.nextNonPing()).data, '{"n":1}');
    assert.equal(await ws.nextText(), `{"identifier":${JSON.stringify(pubsubId(name))},"message":{"n":1}}`);
    assert.equal((await excluded.nextNonPing()).data, '{"n":2}', 'the excluded stream got only the second');
    for (const s of [excluded, other]) s.close();
    await ws.close();
  });

  test('authentication as for WebSocket: JWT in the query or the X-JID header; none or a bad one is 401', async () => {
    const name = `auth_${suffix()}`;
    const byHeader = await openStream(server, `/events?stream=${name}`, { 'X-JID': token });
    byHeader.close();
    const none = await SseStream.open(server.port, `/events?stream=${name}`);
    await none.ended;
    assert.equal(none.statusLine, 'HTTP/1.1 401 Unauthorized');
    assert.deepEqual(none.json(), { error: 'unauthorized' });
    const forged = await signToken('another-secret-0123456789', { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
    const bad = await SseStream.open(server.port, `/events?stream=${name}&jid=${forged}`);
    await bad.ended;
    assert.equal(bad.status, 401);
    assert.ok(server.logs.text.includes('SSE request refused'));
  });

  test('bad input gets its status: no channel, bad history_since, bad or huge POST bodies, other methods', async () => {
    const noChannel = await SseStream.open(server.port, `/events?jid=${token}`);
    await noChannel.ended;
    assert.equal(noChannel.status, 400);
    assert.equal((noChannel.json() as { error: string }).error, 'no_channel');
    const since = await SseStream.open(server.port, `/events?stream=x&history_since=yesterday&jid=${token}`);
    await since.ended;
    assert.equal(since.status, 400);
    assert.equal((since.json() as { error: string }).error, 'bad_history_since');
    const rejected = await SseStream.open(server.port, `/events?signed_stream=forged--abc&jid=${token}`);
    await rejected.ended;
    assert.equal(rejected.status, 400);
    assert.deepEqual(rejected.json(), { error: 'subscription_rejected' });
    for (const body of ['{"command":"subscribe"', '{"command":"message","identifier":"x","data":"{}"}', '[1]', '']) {
      const answer = await SseStream.open(server.port, `/events?jid=${token}`, { method: 'POST', body });
      await answer.ended;
      assert.equal(answer.status, 400, body);
    }
    const line = JSON.stringify({ command: 'subscribe', identifier: pubsubId('big') });
    const huge = Array.from({ length: Math.ceil(70_000 / (line.length + 1)) }, () => line).join('\n');
    const tooBig = await SseStream.open(server.port, `/events?jid=${token}`, { method: 'POST', body: huge });
    await tooBig.ended;
    assert.equal(tooBig.statusLine, 'HTTP/1.1 413 Payload Too Large');
    assert.equal((tooBig.json() as { error: string }).error, 'body_too_large');
    // Without a Content-Length (chunked upload) the limit holds while reading.
    const streamed = await SseStream.open(server.port, `/events?jid=${token}`, {
      method: 'POST', body: `${(70_000).toString(16)}\r\n${huge.slice(0, 70_000)}\r\n0\r\n\r\n`, headers: { 'Transfer-Encoding': 'chunked', 'Content-Length': '' },
    });
    await streamed.ended;
    assert.equal(streamed.status, 413);
    const put = await SseStream.open(server.port, '/events', { method: 'PUT', headers: { 'Content-Length': '0' } });
    await put.ended;
    assert.equal(put.status, 405);
    assert.equal(put.headers.allow, 'GET, POST, OPTIONS');
    assert.equal(server.app.node.size, 0, 'no session is left behind');
  });

  test('CORS: allowed origins are echoed with credentials; others get 403; preflight answers', async () => {
    const name = `cors_${suffix()}`;
    const allowed = await openStream(server, `/events?stream=${name}&jid=${token}`, { Origin: 'https://app.example.com' });
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(allowed.headers['access-control-allow-credentials'], 'true');
    allowed.close();
    const suffixMatch = await openStream(server, `/events?stream=${name}&jid=${token}`, { Origin: 'https://x.trusted.io' });
    assert.equal(suffixMatch.headers['access-control-allow-origin'], 'https://x.trusted.io');
    suffixMatch.close();
    const denied = await SseStream.open(server.port, `/events?stream=${name}&jid=${token}`, { headers: { Origin: 'https://evil.example.org' } });
    await denied.ended;
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.json(), { error: 'origin_not_allowed' });
    const preflight = await SseStream.open(server.port, '/events', { method: 'OPTIONS', headers: { Origin: 'https://app.example.com', 'Access-Control-Request-Method': 'POST' } });
    await preflight.ended;
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(preflight.headers['access-control-allow-methods'], 'GET, POST, OPTIONS');
    assert.match(preflight.headers['access-control-allow-headers'] ?? '', /Last-Event-ID/);
  });

  test('sse_clients_num counts open streams; a client that leaves is forgotten by the hub', async () => {
    const name = `gauge_${suffix()}`;
    const base = server.app.metrics.gauge('sse_clients_num');
    const one = await openStream(server, `/events?stream=${name}&jid=${token}`);
    const two = await openStream(server, `/events?stream=${name}&jid=${token}`);
    assert.equal(server.app.metrics.gauge('sse_clients_num'), base + 2);
    one.close();
    await waitUntil(() => server.app.metrics.gauge('sse_clients_num') === base + 1, 'one stream is closed', 3000);
    await broadcast(server.http, { stream: name, data: '{"still":true}' }, BROADCAST_KEY);
    assert.equal((await two.nextNonPing()).event, 'confirm_subscription');
    assert.equal((await two.nextNonPing()).data, '{"still":true}');
    two.close();
    await waitUntil(() => server.app.metrics.gauge('sse_clients_num') === base, 'both streams are closed', 3000);
    await waitUntil(() => server.app.node.size === 0, 'the sessions are gone', 3000);
  });

  test('a remote disconnect with reconnect:false is an event with a year-long retry, then the stream ends', async () => {
    const userToken = await signToken(TEST_SECRET, { ext: JSON.stringify({ user_id: `u_${suffix()}` }) }, { expiresIn: 300 });
    const user = (JSON.parse(Buffer.from(userToken.split('.')[1] ?? '', 'base64url').toString()) as { ext: string }).ext;
    const stream = await openStream(server, `/events?stream=kick_${suffix()}&jid=${userToken}`);
    await stream.next();
    await broadcast(server.http, { command: 'disconnect', payload: { identifier: user, reconnect: false } }, BROADCAST_KEY);
    const event = await stream.nextNonPing();
    assert.equal(event.raw, 'event: disconnect\ndata: {"type":"disconnect","reason":"remote","reconnect":false}\nretry: 31536000000');
    await stream.ended;
    assert.ok(stream.wire.toString('latin1').endsWith('0\r\n\r\n'), 'the chunked body is terminated');
  });

  test('Turbo Streams HTML with line breaks arrives as multi-line data that EventSource joins back', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--turbo_streams', '--sse'], async (turbo) => {
      const name = `turbo_${suffix()}`;
      const signed = signStreamName(TEST_SECRET, name);
      const t = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
      const html = '<turbo-stream action="append" target="log">\n  <template>hi\r\nthere</template>\n</turbo-stream>';
      const source = new EventSource(`${turbo.http}/events?turbo_signed_stream_name=${encodeURIComponent(signed)}&jid=${t}`);
      try {
        const confirmed = new Promise<void>((resolve) => source.addEventListener('confirm_subscription', () => resolve()));
        const got = new Promise<string>((resolve) => { source.onmessage = (e) => resolve(String(e.data)); });
        await within(confirmed, 'confirm_subscription event');
        assert.equal((await broadcast(turbo.http, { stream: name, data: JSON.stringify(html) }, BROADCAST_KEY)).status, 201);
        assert.equal(await within(got, 'message event'), html.replace('\r\n', '\n'));
      } finally {
        source.close();
      }
    });
  });
});

describe('SSE: pings, slow clients, shutdown, RPC', () => {
  test('pings arrive as ping events; a client that stops reading is disconnected as too slow', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--sse', '--ping_interval', '1', '--ws_max_pending_size', '65536'], async (server) => {
      const t = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
      const name = `slow_${suffix()}`;
      const stream = await openStream(server, `/events?stream=${name}&jid=${t}`);
      await stream.next();
      const ping = await stream.next(2500);
      assert.equal(ping.event, 'ping');
      assert.match(ping.raw, /^event: ping\ndata: \{"type":"ping","message":\d+\}$/);

      const fast = await openStream(server, `/events?stream=${name}&jid=${t}`);
      stream.pause();
      const before = server.app.metrics.counters.disconnected_slow_clients_total;
      const chunk = JSON.stringify('z'.repeat(16 * 1024));
      let sent = 0;
      for (let i = 0; i < 40 && server.app.metrics.counters.disconnected_slow_clients_total === before; i++) {
        await broadcast(server.http, Array.from({ length: 20 }, () => ({ stream: name, data: chunk })), BROADCAST_KEY);
        sent += 20;
        await sleep(20);
      }
      await waitUntil(() => server.app.metrics.counters.disconnected_slow_clients_total === before + 1, 'the slow client is evicted', 3000);
      stream.resume();
      await stream.ended;
      assert.ok(stream.body.endsWith('event: disconnect\ndata: {"type":"disconnect","reason":"too_slow","reconnect":true}\n\n'), 'the backlog, then too_slow');
      let received = 0;
      while (received < sent) {
        const e = await fast.next(5000);
        if (e.event === '' ) received++;
      }
      assert.equal(received, sent, 'the fast client got every message');
      fast.close();
    });
  });

  test('shutdown sends server_restart and ends the stream', async () => {
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--sse']);
    const t = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
    const stream = await openStream(server, `/events?stream=bye_${suffix()}&jid=${t}`);
    await stream.next();
    await server.stop();
    const event = await stream.nextNonPing();
    assert.equal(event.raw, 'event: disconnect\ndata: {"type":"disconnect","reason":"server_restart","reconnect":true}');
    await stream.ended;
  });

  test('RPC Connect authenticates from the request (cookies, URL); channels subscribe through RPC; rejections are 400', async () => {
    await withRpcApp(['--sse'], async (server, app) => {
      const ok = await openStream(server, '/events?test=cookies&channel=TransmissionsChannel', { Cookie: 'username=john green' });
      const id = identifier('TransmissionsChannel');
      assert.deepEqual([(await ok.next()).data, (await ok.next()).data], ['hello', 'world']);
      assert.equal((await ok.next()).data, JSON.stringify({ identifier: id, type: 'confirm_subscription' }));
      const connect = app.callsOf('Connect').at(-1);
      assert.match(JSON.stringify(connect?.request), /\/events\?test=cookies&channel=TransmissionsChannel/);
      ok.close();
      const unauthorized = await SseStream.open(server.port, '/events?test=cookies&channel=TransmissionsChannel', { headers: { Cookie: 'username=jane' } });
      await unauthorized.ended;
      assert.equal(unauthorized.status, 401);
      const rejected = await SseStream.open(server.port, '/events?channel=RejectChannel');
      await rejected.ended;
      assert.equal(rejected.status, 400);
      assert.deepEqual(rejected.json(), { error: 'subscription_rejected' });
      await waitUntil(() => app.callsOf('Disconnect').length >= 2, 'Disconnect is called for the closed sessions', 3000);
    });
  });

  test('the WebSocket key authenticates SSE too (?token=); without it the request is 401', async () => {
    await withServer(['--norpc', '--public_streams', '--sse', '--ws_api_key', 'sse-key-123'], async (server) => {
      const ok = await openStream(server, `/events?stream=key_${suffix()}&token=sse-key-123`);
      ok.close();
      const bad = await SseStream.open(server.port, `/events?stream=key_${suffix()}&token=nope`);
      await bad.ended;
      assert.equal(bad.status, 401);
    });
  });

  test('without --sse the path is not served', async () => {
    await withServer(['--norpc'], async (server) => {
      const answer = await SseStream.open(server.port, '/events?stream=x');
      await answer.ended;
      assert.equal(answer.status, 404);
    });
  });
});
