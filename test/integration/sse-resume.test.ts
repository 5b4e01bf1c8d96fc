import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { startServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { broadcast } from '../helpers/http.js';
import { waitUntil } from '../helpers/wait.js';
import { signToken } from '../helpers/tokens.js';
import { SseStream, type SseEvent } from '../helpers/sse-stream.js';
import { deriveKey } from '../../src/auth/keys.js';

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');
const suffix = (): string => Math.random().toString(36).slice(2, 10);

/** Data events (broadcasts) only: pings and protocol events are skipped. */
async function nextData(stream: SseStream, timeoutMs = 3000): Promise<SseEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = await stream.next(Math.max(1, deadline - Date.now()));
    if (e.event === '') return e;
  }
}

describe('SSE with a broker: event ids and Last-Event-ID resume', () => {
  let server: TestServer;
  let token: string;
  let userToken: (user: string) => Promise<string>;
  before(async () => {
    server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--sse', '--broker', 'memory', '--history_limit', '50']);
    userToken = (user) => signToken(TEST_SECRET, { ext: JSON.stringify({ user_id: user }) }, { expiresIn: 300 });
    token = await userToken('1');
  });
  after(() => server.stop());

  test('data events carry id: <offset>/<epoch>/<stream>, offsets growing by one', async () => {
    const name = `ids_${suffix()}`;
    const stream = await SseStream.open(server.port, `/events?stream=${name}&jid=${token}`);
    assert.equal(stream.status, 200);
    await stream.nextOf('confirm_subscription');
    await broadcast(server.http, [{ stream: name, data: '{"n":1}' }, { stream: name, data: '{"n":2}' }], BROADCAST_KEY);
    const first = await nextData(stream);
    const second = await nextData(stream);
    const [offset1, epoch, stream1] = (first.id ?? '').split('/');
    assert.equal(stream1, name);
    assert.ok(epoch && epoch.length > 0);
    assert.equal(first.raw, `data: {"n":1}\nid: ${offset1}/${epoch}/${name}`);
    assert.equal(second.raw, `data: {"n":2}\nid: ${Number(offset1) + 1}/${epoch}/${name}`);
    stream.close();
  });

  test('after the server cut the stream, Last-Event-ID brings exactly what was missed, then live messages', async () => {
    const name = `resume_${suffix()}`;
    const user = `u_${suffix()}`;
    const t = await userToken(user);
    const ws = await RawClient.connect(`${server.url}?jid=${token}`);
    assert.equal(((await ws.next()) as { type: string }).type, 'welcome');
    const wsId = identifier('$pubsub', { stream_name: name });
    ws.subscribe(wsId);
    assert.deepEqual(await ws.next(), { identifier: wsId, type: 'confirm_subscription' });

    const first = await SseStream.open(server.port, `/events?stream=${name}&jid=${t}`);
    await first.nextOf('confirm_subscription');
    await broadcast(server.http, [1, 2, 3].map((n) => ({ stream: name, data: JSON.stringify({ n }) })), BROADCAST_KEY);
    let last: SseEvent | null = null;
    for (let n = 1; n <= 3; n++) {
      last = await nextData(first);
      assert.equal(last.data, JSON.stringify({ n }));
    }
    // The server cuts the stream (a remote disconnect that allows reconnecting).
    await broadcast(server.http, { command: 'disconnect', payload: { identifier: JSON.stringify({ user_id: user }), reconnect: true } }, BROADCAST_KEY);
    const disconnect = await first.nextOf('disconnect');
    assert.equal(disconnect.data, '{"type":"disconnect","reason":"remote","reconnect":true}');
    assert.equal(disconnect.retry, null, 'reconnect:true leaves EventSource\'s own retry');
    await first.ended;
    // Missed while away.
    await broadcast(server.http, [4, 5].map((n) => ({ stream: name, data: JSON.stringify({ n }) })), BROADCAST_KEY);

    const resumed = await SseStream.open(server.port, `/events?stream=${name}&jid=${t}`, { headers: { 'Last-Event-ID': last?.id ?? '' } });
    assert.equal(resumed.status, 200);
    await resumed.nextOf('confirm_subscription');
    assert.equal((await nextData(resumed)).data, '{"n":4}');
    assert.equal((await nextData(resumed)).data, '{"n":5}');
    const confirmHistory = await resumed.nextOf('confirm_history');
    assert.equal(confirmHistory.data, JSON.stringify({ type: 'confirm_history', identifier: identifier('$pubsub', { stream_name: name }) }));
    await broadcast(server.http, { stream: name, data: '{"n":6}' }, BROADCAST_KEY);
    const live = await nextData(resumed);
    assert.equal(live.data, '{"n":6}');
    // The WebSocket client saw the same six, in the same order, with the same positions.
    for (let n = 1; n <= 6; n++) {
      const frame = JSON.parse(await ws.nextText()) as { message: unknown; offset: number; epoch: string; stream_id: string };
      assert.deepEqual(frame.message, { n });
      if (n === 6) assert.equal(`${frame.offset}/${frame.epoch}/${frame.stream_id}`, live.id);
    }
    resumed.close();
    await ws.close();
  });

  test('an unknown epoch or an evicted position is answered with reject_history; live messages still flow', async () => {
    const name = `stale_${suffix()}`;
    const stream = await SseStream.open(server.port, `/events?stream=${name}&jid=${token}`, { headers: { 'Last-Event-ID': `3/not-an-epoch/${name}` } });
    assert.equal(stream.status, 200);
    await stream.nextOf('confirm_subscription');
    const reject = await stream.nextOf('reject_history');
    assert.equal(reject.data, JSON.stringify({ type: 'reject_history', identifier: identifier('$pubsub', { stream_name: name }) }));
    await broadcast(server.http, { stream: name, data: '"fresh"' }, BROADCAST_KEY);
    assert.equal((await nextData(stream)).data, 'fresh');
    stream.close();
  });

  test('history_since replays what the stream kept since then', async () => {
    const name = `since_${suffix()}`;
    await broadcast(server.http, [{ stream: name, data: '"a"' }, { stream: name, data: '"b"' }], BROADCAST_KEY);
    const since = Math.floor(Date.now() / 1000) - 60;
    const stream = await SseStream.open(server.port, `/events?stream=${name}&history_since=${since}&jid=${token}`);
    await stream.nextOf('confirm_subscription');
    assert.equal((await nextData(stream)).data, 'a');
    assert.equal((await nextData(stream)).data, 'b');
    await stream.nextOf('confirm_history');
    stream.close();
  });

  test('EventSource (the eventsource package) reconnects by itself with Last-Event-ID and loses nothing', async () => {
    const name = `auto_${suffix()}`;
    const user = `u_${suffix()}`;
    const t = await userToken(user);
    const source = new EventSource(`${server.http}/events?stream=${name}&jid=${t}`);
    const received: string[] = [];
    let opened = 0;
    source.addEventListener('confirm_subscription', () => { opened++; });
    source.onmessage = (e) => { received.push(String(e.data)); };
    try {
      await waitUntil(() => opened === 1, 'the first subscription is confirmed', 8000);
      await broadcast(server.http, [1, 2].map((n) => ({ stream: name, data: String(n) })), BROADCAST_KEY);
      await waitUntil(() => received.length === 2, 'two messages arrived', 8000);
      await broadcast(server.http, { command: 'disconnect', payload: { identifier: JSON.stringify({ user_id: user }), reconnect: true } }, BROADCAST_KEY);
      // Sent while the browser-like client waits to reconnect.
      await broadcast(server.http, [3, 4].map((n) => ({ stream: name, data: String(n) })), BROADCAST_KEY);
      await waitUntil(() => opened === 2, 'the reconnection is confirmed', 8000);
      await broadcast(server.http, { stream: name, data: '5' }, BROADCAST_KEY);
      await waitUntil(() => received.length === 5, 'all five messages arrived', 8000);
      assert.deepEqual(received, ['1', '2', '3', '4', '5']);
    } finally {
      source.close();
    }
  });
});
