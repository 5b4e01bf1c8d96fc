import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, withServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { withRpcApp } from '../helpers/rpc-app.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { EXT, connectExt, framesUntil, publishEach, subscribeStream, type Positioned } from '../helpers/ext-json.js';

const unique = (): string => randomBytes(5).toString('hex');

describe('memory broker: positions and history', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', '--history_limit', '3']);
  });
  after(() => server.stop());

  test('every broadcast frame carries stream_id, epoch and consecutive offsets, on v1-json too', async () => {
    const stream = `s-${unique()}`;
    const ext = await connectExt(server);
    const plain = await connectExt(server, { protocols: ['actioncable-v1-json'] });
    const idExt = await subscribeStream(ext.client, stream);
    const idPlain = await subscribeStream(plain.client, stream);
    await publishEach(server, stream, { n: 1 }, 'two');
    const frames = [await ext.client.next(), await ext.client.next()] as Positioned[];
    const epoch = frames[0]!.epoch;
    assert.match(epoch, /^[A-Za-z0-9_-]{8}$/);
    assert.deepEqual(frames, [
      { identifier: idExt, message: { n: 1 }, stream_id: stream, epoch, offset: 1 },
      { identifier: idExt, message: 'two', stream_id: stream, epoch, offset: 2 },
    ]);
    assert.equal(await plain.client.nextText(), `{"identifier":${JSON.stringify(idPlain)},"message":{"n":1},"stream_id":"${stream}","epoch":"${epoch}","offset":1}`);
    await ext.client.close();
    await plain.client.close();
  });

  test('subscribe with history.since: confirmation, the stored messages in order, confirm_history, then live ones', async () => {
    const stream = `s-${unique()}`;
    await publishEach(server, stream, 'a', 'b');
    const { client } = await connectExt(server);
    const id = await subscribeStream(client, stream, { since: Math.floor(Date.now() / 1000) - 30 });
    const a = (await client.next()) as Positioned;
    assert.deepEqual(a, { identifier: id, message: 'a', stream_id: stream, epoch: a.epoch, offset: 1 });
    assert.deepEqual(await client.next(), { identifier: id, message: 'b', stream_id: stream, epoch: a.epoch, offset: 2 });
    assert.deepEqual(await client.next(), { type: 'confirm_history', identifier: id });
    await publishEach(server, stream, 'c');
    assert.deepEqual(await client.next(), { identifier: id, message: 'c', stream_id: stream, epoch: a.epoch, offset: 3 });
    assert.equal(await client.nothingWithin(200), null);
    await client.close();
  });

  test('the history command with a position returns only what came after it; history metrics count hits and misses', async () => {
    const stream = `s-${unique()}`;
    const { client } = await connectExt(server);
    const id = await subscribeStream(client, stream);
    await publishEach(server, stream, 1, 2, 3);
    const first = (await client.next()) as Positioned;
    await client.next();
    await client.next();
    const hits = server.app.metrics.counters.history_hits_total;
    const misses = server.app.metrics.counters.history_misses_total;
    client.send({ command: 'history', identifier: id, history: { streams: { [stream]: { epoch: first.epoch, offset: 1 } } } });
    assert.deepEqual(await client.next(), { identifier: id, message: 2, stream_id: stream, epoch: first.epoch, offset: 2 });
    assert.deepEqual(await client.next(), { identifier: id, message: 3, stream_id: stream, epoch: first.epoch, offset: 3 });
    assert.deepEqual(await client.next(), { type: 'confirm_history', identifier: id });
    client.send({ command: 'history', identifier: id, history: { streams: { [stream]: { epoch: first.epoch, offset: 3 } } } });
    assert.deepEqual(await client.next(), { type: 'confirm_history', identifier: id }, 'nothing missed: only the confirmation');
    assert.equal(server.app.metrics.counters.history_hits_total, hits + 2);
    assert.equal(server.app.metrics.counters.history_misses_total, misses);
    await client.close();
  });

  test('an unknown epoch, a position older than the window, a position ahead, a malformed request or an unknown subscription get reject_history', async () => {
    const stream = `s-${unique()}`;
    const { client } = await connectExt(server);
    const id = await subscribeStream(client, stream);
    await publishEach(server, stream, 1, 2, 3, 4, 5);
    const frames = [] as Positioned[];
    for (let i = 0; i < 5; i++) frames.push((await client.next()) as Positioned);
    const epoch = frames[0]!.epoch;
    const misses = server.app.metrics.counters.history_misses_total;
    const asks = [
      { streams: { [stream]: { epoch: 'unknown', offset: 4 } } },
      { streams: { [stream]: { epoch, offset: 1 } } },
      { streams: { [stream]: { epoch, offset: 99 } } },
    ];
    for (const history of asks) {
      client.send({ command: 'history', identifier: id, history });
      assert.deepEqual(await client.next(), { type: 'reject_history', identifier: id }, JSON.stringify(history));
    }
    client.send({ command: 'history', identifier: id });
    assert.deepEqual(await client.next(), { type: 'reject_history', identifier: id });
    const other = identifier('$pubsub', { stream_name: 'not-subscribed' });
    client.send({ command: 'history', identifier: other, history: { since: 0 } });
    assert.deepEqual(await client.next(), { type: 'reject_history', identifier: other });
    assert.equal(server.app.metrics.counters.history_misses_total, misses + 5);
    client.send({ command: 'history', identifier: id, history: { streams: { [stream]: { epoch, offset: 2 } } } });
    for (const offset of [3, 4, 5]) assert.equal(((await client.next()) as Positioned).offset, offset);
    assert.deepEqual(await client.next(), { type: 'confirm_history', identifier: id });
    await client.close();
  });

  test('a client subscribing with history while broadcasts flow gets every message once, in order', async () => {
    const stream = `s-${unique()}`;
    await publishEach(server, stream, 0);
    const { client } = await connectExt(server);
    const id = identifier('$pubsub', { stream_name: stream });
    const flowing = (async () => { for (let n = 1; n <= 20; n++) await publishEach(server, stream, n); })();
    client.send({ command: 'subscribe', identifier: id, history: { since: Math.floor(Date.now() / 1000) - 30 } });
    await flowing;
    await publishEach(server, stream, 'end');
    const got: unknown[] = [];
    for (;;) {
      const frame = (await client.next()) as { type?: string; message?: unknown };
      if (frame.type) continue;
      got.push(frame.message);
      if (frame.message === 'end') break;
    }
    // The window is 3 messages: history gives the last ones stored at subscribe time, live the rest.
    const numbers = got.filter((m): m is number => typeof m === 'number');
    assert.deepEqual(numbers, [...numbers].sort((x, y) => x - y), 'in order');
    assert.equal(new Set(numbers).size, numbers.length, 'no duplicates');
    assert.equal(numbers[numbers.length - 1], 20);
    await client.close();
  });

  test('presence events are transient: no position on them, none kept in history', async () => {
    const { client } = await connectExt(server);
    const id = await subscribeStream(client, `s-${unique()}`);
    client.send({ command: 'join', identifier: id, presence: { id: 'u1', info: {} } });
    assert.deepEqual(await client.next(), { type: 'presence', identifier: id, message: { type: 'join', id: 'u1', info: {} } });
    client.send({ command: 'leave', identifier: id });
    assert.deepEqual(await client.next(), { type: 'presence', identifier: id, message: { type: 'leave', id: 'u1' } });
    // Everything since 1970: the stream's history is empty, so the confirmation comes alone.
    client.send({ command: 'history', identifier: id, history: { since: 1 } });
    assert.deepEqual(await client.next(), { type: 'confirm_history', identifier: id });
    await client.close();
  });
});

describe('without a broker', () => {
  test('frames carry no position and history requests get reject_history', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--public_streams'], async (server) => {
      const stream = `s-${unique()}`;
      const { client, welcome } = await connectExt(server);
      const id = identifier('$pubsub', { stream_name: stream });
      client.send({ command: 'subscribe', identifier: id, history: { since: 0 } });
      assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
      assert.deepEqual(await client.next(), { type: 'reject_history', identifier: id });
      await publishEach(server, stream, 'x');
      assert.deepEqual(await client.next(), { identifier: id, message: 'x' });
      await client.close();
      const again = await connectExt(server, { query: `&sid=${String(welcome.sid)}` });
      assert.equal(again.welcome.restored, undefined, 'no broker, no restore');
      await again.client.close();
    });
  });
});

/** A client that got message 1 of `stream`, then left; 2 and 3 were broadcast while it was away. */
async function leftAfterOne(server: TestServer, stream: string): Promise<{ first: Awaited<ReturnType<typeof connectExt>>; id: string; seen: Positioned }> {
  const first = await connectExt(server);
  const id = await subscribeStream(first.client, stream);
  await publishEach(server, stream, 1);
  const seen = (await first.client.next()) as Positioned;
  await first.client.close();
  await publishEach(server, stream, 2, 3);
  return { first, id, seen };
}

describe('memory broker: session recovery', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', 'memory']);
  });
  after(() => server.stop());

  test('?sid= restores the session: new sid, restored_ids, streams back; history catches up on what was missed, once', async () => {
    const stream = `s-${unique()}`;
    const { first, id, seen } = await leftAfterOne(server, stream);
    const restoredBefore = server.app.metrics.counters.sessions_restored_total;
    const second = await connectExt(server, { query: `&sid=${String(first.welcome.sid)}` });
    assert.equal(typeof second.welcome.sid, 'string');
    assert.notEqual(second.welcome.sid, first.welcome.sid);
    assert.deepEqual(second.welcome, { type: 'welcome', sid: second.welcome.sid, restored: true, restored_ids: [id] });
    assert.equal(server.app.metrics.counters.sessions_restored_total, restoredBefore + 1);
    // Live messages before the client's history request wait, so nothing arrives out of order.
    await publishEach(server, stream, 4);
    second.client.send({ command: 'history', identifier: id, history: { since: 0, streams: { [stream]: { epoch: seen.epoch, offset: seen.offset } } } });
    const got = (await framesUntil(second.client, 'confirm_history')).map((f) => f.message);
    // 4 was stored before the request: it comes with the history, and its held live copy is dropped.
    assert.deepEqual(got, [2, 3, 4]);
    await publishEach(server, stream, 5);
    const next = await second.client.nextText();
    assert.equal((JSON.parse(next) as Positioned).message, 5, next);
    assert.equal(await second.client.nothingWithin(200), null, 'nothing twice');
    await second.client.close();
  });

  test('a history request that comes after the restore hold ran out gets only what the client did not get live, once', async () => {
    for (const liveDuringHold of [true, false]) {
      const stream = `s-${unique()}`;
      const { first, id, seen } = await leftAfterOne(server, stream);
      const second = await connectExt(server, { query: `&sid=${String(first.welcome.sid)}` });
      assert.equal(second.welcome.restored, true);
      // The client is slow to ask for history: live messages go out when the hold runs out (after 1 s).
      if (liveDuringHold) await publishEach(server, stream, 4);
      await new Promise((r) => setTimeout(r, 1300));
      if (!liveDuringHold) await publishEach(server, stream, 4);
      assert.equal(((await second.client.next()) as Positioned).message, 4, 'delivered live');
      await publishEach(server, stream, 5);
      assert.equal(((await second.client.next()) as Positioned).message, 5);
      // Now the history request, from the position the client had before it left.
      second.client.send({ command: 'history', identifier: id, history: { since: 0, streams: { [stream]: { epoch: seen.epoch, offset: seen.offset } } } });
      const got = (await framesUntil(second.client, 'confirm_history')).map((f) => f.message);
      assert.deepEqual(got, [2, 3], `only what was missed (4 and 5 came live), live during the hold: ${liveDuringHold}`);
      await publishEach(server, stream, 6);
      assert.equal(((await second.client.next()) as Positioned).message, 6);
      assert.equal(await second.client.nothingWithin(200), null, 'nothing twice');
      await second.client.close();
    }
  });

  test('without a history request held live messages still arrive; the header wins over ?sid=; a miss authenticates normally', async () => {
    const stream = `s-${unique()}`;
    const first = await connectExt(server);
    const id = await subscribeStream(first.client, stream);
    const sid = String(first.welcome.sid);
    // anyt's restore scenario: the first socket stays open.
    const second = await connectExt(server, { query: '&sid=bogus', headers: { 'X-AnyCable-Restore-Sid': sid } });
    assert.equal(second.welcome.restored, true);
    await publishEach(server, stream, 'hello');
    const live = (await first.client.next()) as Positioned;
    assert.equal(live.message, 'hello');
    assert.equal(await second.client.nothingWithin(100), null, 'held for the history request');
    assert.deepEqual(await second.client.next(3000), live);
    const misses = server.app.metrics.counters.session_restore_misses_total;
    const third = await connectExt(server, { query: `&sid=${sid}`, headers: { 'X-AnyCable-Restore-Sid': 'bogus' } });
    assert.deepEqual(Object.keys(third.welcome).sort(), ['sid', 'type'], 'not restored: a fresh welcome');
    assert.equal(server.app.metrics.counters.session_restore_misses_total, misses + 1);
    const plain = await connectExt(server, { protocols: ['actioncable-v1-json'], query: `&sid=${sid}` });
    assert.equal(plain.welcome.restored, undefined, 'only ext-json sessions are restored');
    for (const c of [first, second, third, plain]) await c.client.close();
  });
});

describe('session recovery with an RPC app', () => {
  test('identifiers, connection and channel state come back without Connect or channel callbacks', async () => {
    await withRpcApp(['--broker'], async (server, app) => {
      const client = await RawClient.connect(`${server.url}?uid=ann`, { protocols: EXT });
      const welcome = (await client.next()) as { sid: string };
      const id = identifier('StateChannel', { name: 'ann' });
      client.subscribe(id);
      assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
      client.perform(id, { action: 'tick' });
      assert.deepEqual(await client.next(), { identifier: id, message: { count: 3, name: 'ann' } });
      client.perform(id, { action: 'set_cstate', key: 'mood', value: 'good' });
      client.perform(id, { action: 'get_cstate' });
      assert.deepEqual(await client.next(), { identifier: id, message: { mood: 'good' } });
      await client.close();
      await app.waitForCall((c) => c.method === 'Disconnect');
      const calls = app.calls.length;

      const back = await RawClient.connect(`${server.url}?sid=${welcome.sid}`, { protocols: EXT });
      const restored = (await back.next()) as Record<string, unknown>;
      assert.deepEqual(restored, { type: 'welcome', sid: restored.sid, restored: true, restored_ids: [id] });
      assert.equal(app.calls.length, calls, 'no Connect, no Subscribe');
      back.perform(id, { action: 'tick' });
      assert.deepEqual(await back.next(), { identifier: id, message: { count: 5, name: 'ann' } }, 'channel state came back');
      back.perform(id, { action: 'get_cstate' });
      assert.deepEqual(await back.next(), { identifier: id, message: { mood: 'good' } }, 'connection state came back');
      const tick = app.calls.filter((c) => c.method === 'Command').pop();
      assert.equal((tick?.request as { connection_identifiers?: string }).connection_identifiers, JSON.stringify({ uid: 'ann' }), 'identifiers came back');
      await back.close();
    });
  });

  test('--sessions_ttl 0 keeps no sessions', async () => {
    await withRpcApp(['--broker', '--sessions_ttl', '0'], async (server) => {
      const client = await RawClient.connect(`${server.url}?uid=bob`, { protocols: EXT });
      const welcome = (await client.next()) as { sid: string };
      await client.close();
      const back = await RawClient.connect(`${server.url}?uid=bob&sid=${welcome.sid}`, { protocols: EXT });
      assert.equal(((await back.next()) as { restored?: boolean }).restored, undefined);
      await back.close();
    });
  });
});

describe('ext-json keepalive', () => {
  test('--pong_timeout disconnects a silent ext-json client with no_pong; one that answers stays; v1-json is exempt', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--pong_timeout', '2', '--ping_interval', '1'], async (server) => {
      const silent = await connectExt(server);
      const answering = await connectExt(server);
      answering.client.ignore = new Set();
      const plain = await connectExt(server, { protocols: ['actioncable-v1-json'] });
      const closed = silent.client.closed;
      const pongs = (async () => {
        for (let i = 0; i < 3; i++) {
          const frame = (await answering.client.next(3000)) as { type: string };
          assert.equal(frame.type, 'ping');
          answering.client.send({ command: 'pong' });
        }
      })();
      assert.deepEqual(await silent.client.next(4000), { type: 'disconnect', reason: 'no_pong', reconnect: true });
      assert.deepEqual(await closed, { code: 1000, reason: 'No Pong' });
      await pongs;
      assert.equal(answering.client.ws.readyState, answering.client.ws.OPEN);
      assert.equal(plain.client.ws.readyState, plain.client.ws.OPEN);
      await answering.client.close();
      await plain.client.close();
    });
  });

  test('?ptp= sets the ping timestamp unit: s by default, ms, ns', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--ping_interval', '1'], async (server) => {
      const digits: Record<string, number> = {};
      for (const ptp of ['', 'ms', 'ns']) {
        const { client } = await connectExt(server, { query: ptp ? `&ptp=${ptp}` : '' });
        client.ignore = new Set();
        const ping = await client.nextText(3000);
        const match = /^\{"type":"ping","message":(\d+)\}$/.exec(ping);
        assert.ok(match, ping);
        digits[ptp || 's'] = match[1]!.length;
        await client.close();
      }
      assert.deepEqual(digits, { s: 10, ms: 13, ns: 19 });
    });
  });
});
