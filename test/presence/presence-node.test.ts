import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, withServer, type TestServer } from '../helpers/server.js';
import { RpcApp, withRpcApp } from '../helpers/rpc-app.js';
import { TEST_SECRET } from '../helpers/server.js';
import { deriveKey } from '../../src/auth/keys.js';
import { RawClient, identifier } from '../helpers/ws-client.js';

const EXT = 'actioncable-v1-ext-json';
const unique = (): string => randomBytes(4).toString('hex');

/** `{"type":"presence","identifier":…,"message":…}` exactly as the server writes it. */
function presenceFrame(id: string, message: string): string {
  return `{"type":"presence","identifier":${JSON.stringify(id)},"message":${message}}`;
}
const joinFrame = (id: string, pid: string, info?: string): string => presenceFrame(id, `{"type":"join","id":${JSON.stringify(pid)}${info === undefined ? '' : `,"info":${info}`}}`);
const leaveFrame = (id: string, pid: string): string => presenceFrame(id, `{"type":"leave","id":${JSON.stringify(pid)}}`);
const errorFrame = (id: string): string => presenceFrame(id, '{"type":"error","total":0}');

async function welcomed(url: string, protocol = EXT): Promise<RawClient> {
  const client = await RawClient.connect(url, { protocols: [protocol] });
  assert.equal((await client.next() as { type: string }).type, 'welcome');
  return client;
}

type Member = { client: RawClient; id: string };

/** A client subscribed to a public stream (identifier with the given key order). */
async function member(server: TestServer, stream: string, opts: { reversed?: boolean; protocol?: string } = {}): Promise<Member> {
  const client = await welcomed(server.url, opts.protocol);
  const id = opts.reversed ? JSON.stringify({ stream_name: stream, channel: '$pubsub' }) : identifier('$pubsub', { stream_name: stream });
  client.subscribe(id);
  assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
  return { client, id };
}

function join(client: RawClient, id: string, pid: unknown, info?: unknown): void {
  client.send({ command: 'join', identifier: id, presence: info === undefined ? { id: pid } : { id: pid, info } });
}

/** A watcher, then a member that joins as `u1`; the watcher has seen the join. */
async function watchedJoin(server: TestServer, stream: string): Promise<{ watcher: Member; joined: Member }> {
  const watcher = await member(server, stream);
  const joined = await member(server, stream);
  join(joined.client, joined.id, 'u1');
  assert.equal(await watcher.client.nextText(), joinFrame(watcher.id, 'u1'));
  return { watcher, joined };
}

async function info(client: RawClient, id: string): Promise<string> {
  client.send({ command: 'presence', identifier: id, data: {} });
  return client.nextText();
}

const infoFrame = (id: string, records: Array<[string, string?]>): string =>
  presenceFrame(id, `{"type":"info","total":${records.length},"records":[${records.map(([pid, i]) => `{"id":${JSON.stringify(pid)}${i === undefined ? '' : `,"info":${i}`}}`).join(',')}]}`);

describe('presence on one node (memory broker), raw frames', () => {
  let server: TestServer;
  before(async () => { server = await startServer(['--public', '--broker', 'memory', '--presence_ttl', '1']); });
  after(() => server.stop());

  test('join reaches every subscriber (the joiner too, each with its own identifier); info lists the member', async () => {
    const stream = `room-${unique()}`;
    const a = await member(server, stream);
    const b = await member(server, stream, { reversed: true });
    join(a.client, a.id, 'u1', { name: 'Ann' });
    assert.equal(await a.client.nextText(), joinFrame(a.id, 'u1', '{"name":"Ann"}'));
    assert.equal(await b.client.nextText(), joinFrame(b.id, 'u1', '{"name":"Ann"}'));
    assert.equal(await info(b.client, b.id), infoFrame(b.id, [['u1', '{"name":"Ann"}']]));
    await a.client.close();
    await b.client.close();
  });

  test('several sessions with one id count once; leave fires when the last of them leaves', async () => {
    const stream = `room-${unique()}`;
    const watcher = await member(server, stream);
    const tab1 = await member(server, stream);
    const tab2 = await member(server, stream, { protocol: 'actioncable-v1-json' });
    join(tab1.client, tab1.id, 'u1', 'first tab');
    assert.equal(await watcher.client.nextText(), joinFrame(watcher.id, 'u1', '"first tab"'));
    join(tab2.client, tab2.id, 'u1', 'second tab');
    join(tab2.client, tab2.id, 'u2');
    assert.equal(await watcher.client.nothingWithin(300), null, 'no second join for u1; u2 is refused: one id per session and stream');
    assert.equal(await info(watcher.client, watcher.id), infoFrame(watcher.id, [['u1', '"second tab"']]));
    tab1.client.send({ command: 'leave', identifier: tab1.id });
    assert.equal(await watcher.client.nothingWithin(300), null, 'u1 is still here in the second tab');
    tab2.client.send({ command: 'leave', identifier: tab2.id });
    assert.equal(await watcher.client.nextText(), leaveFrame(watcher.id, 'u1'));
    assert.equal(await info(watcher.client, watcher.id), infoFrame(watcher.id, []));
    for (const c of [watcher, tab1, tab2]) await c.client.close();
  });

  test('a join without info has none in the event and the info answer; numeric ids are taken as strings', async () => {
    const stream = `room-${unique()}`;
    const a = await member(server, stream);
    join(a.client, a.id, 42);
    assert.equal(await a.client.nextText(), joinFrame(a.id, '42'));
    assert.equal(await info(a.client, a.id), infoFrame(a.id, [['42']]));
    await a.client.close();
  });

  test('unsubscribing leaves at once', async () => {
    const stream = `room-${unique()}`;
    const { watcher, joined: a } = await watchedJoin(server, stream);
    a.client.send({ command: 'unsubscribe', identifier: a.id });
    assert.equal(await watcher.client.nextText(1000), leaveFrame(watcher.id, 'u1'));
    await watcher.client.close();
    await a.client.close();
  });

  test('one session present on a stream through two subscriptions: leaving one keeps it present; leaving both leaves', async () => {
    const stream = `room-${unique()}`;
    const watcher = await member(server, stream);
    const client = await welcomed(server.url);
    const first = identifier('$pubsub', { stream_name: stream });
    const second = JSON.stringify({ stream_name: stream, channel: '$pubsub' });
    for (const id of [first, second]) {
      client.subscribe(id);
      assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
    }
    join(client, first, 'ann');
    assert.equal(await watcher.client.nextText(), joinFrame(watcher.id, 'ann'));
    join(client, second, 'ann');
    // Already present: no second join event.
    assert.equal(await watcher.client.nothingWithin(300), null);
    client.send({ command: 'leave', identifier: first });
    assert.equal(await watcher.client.nothingWithin(300), null, 'still present through the second subscription');
    assert.equal(await info(watcher.client, watcher.id), infoFrame(watcher.id, [['ann']]));
    client.send({ command: 'unsubscribe', identifier: second });
    assert.equal(await watcher.client.nextText(), leaveFrame(watcher.id, 'ann'));
    client.close();
    watcher.client.close();
  });

  test('a closed session leaves after --presence_ttl; meanwhile it is still listed', async () => {
    const stream = `room-${unique()}`;
    const { watcher, joined: a } = await watchedJoin(server, stream);
    const closedAt = Date.now();
    await a.client.close();
    assert.equal(await info(watcher.client, watcher.id), infoFrame(watcher.id, [['u1']]));
    assert.equal(await watcher.client.nextText(5000), leaveFrame(watcher.id, 'u1'));
    assert.ok(Date.now() - closedAt >= 900, 'not before the TTL');
    await watcher.client.close();
  });

  test('a client that comes back within the TTL and joins again never leaves', async () => {
    const stream = `room-${unique()}`;
    const { watcher, joined: first } = await watchedJoin(server, stream);
    await first.client.close();
    const again = await member(server, stream);
    join(again.client, again.id, 'u1');
    // Past the first session's TTL (1 s) and a sweep: no leave, no second join.
    assert.equal(await watcher.client.nothingWithin(2500), null);
    assert.equal(await info(watcher.client, watcher.id), infoFrame(watcher.id, [['u1']]));
    await again.client.close();
    await watcher.client.close();
  });

  test('subscribe with a presence field (ext-json) joins once confirmed', async () => {
    const stream = `room-${unique()}`;
    const client = await welcomed(server.url);
    const id = identifier('$pubsub', { stream_name: stream });
    client.send({ command: 'subscribe', identifier: id, presence: { id: 'u9', info: { v: 1 } } });
    assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
    assert.equal(await client.nextText(), joinFrame(id, 'u9', '{"v":1}'));
    await client.close();
  });

  test('bad join and leave frames are dropped and counted; the connection stays', async () => {
    const stream = `room-${unique()}`;
    const a = await member(server, stream);
    const before = server.app.metrics.counters.failed_client_msg_total;
    const bad: unknown[] = [
      { command: 'join', identifier: a.id },
      { command: 'join', identifier: a.id, presence: 'u1' },
      { command: 'join', identifier: a.id, presence: { info: 1 } },
      { command: 'join', identifier: a.id, presence: { id: '' } },
      { command: 'join', identifier: a.id, presence: { id: { nested: true } } },
      { command: 'join', identifier: 'not-subscribed', presence: { id: 'u1' } },
      { command: 'leave', identifier: 'not-subscribed' },
    ];
    for (const frame of bad) a.client.send(frame);
    assert.equal(await a.client.nothingWithin(300), null);
    assert.equal(server.app.metrics.counters.failed_client_msg_total - before, bad.length);
    assert.equal(await info(a.client, a.id), infoFrame(a.id, []));
    assert.equal(await info(a.client, 'not-subscribed'), errorFrame('not-subscribed'));
    await a.client.close();
  });
});

describe('presence switched off', () => {
  test('--streams_presence=false: join is dropped, info answers an error', async () => {
    await withServer(['--public', '--broker', 'memory', '--streams_presence=false'], async (server) => {
      const a = await member(server, `room-${unique()}`);
      join(a.client, a.id, 'u1');
      assert.equal(await info(a.client, a.id), errorFrame(a.id));
      await a.client.close();
    });
  });

  test('without a broker there is no presence store: info answers an error', async () => {
    await withServer(['--public'], async (server) => {
      const a = await member(server, `room-${unique()}`);
      join(a.client, a.id, 'u1');
      assert.equal(await info(a.client, a.id), errorFrame(a.id));
      await a.client.close();
    });
  });
});

describe('RPC-driven presence (anyt presence_tests)', () => {
  test('perform: follow joins as 2024 with info, unfollow leaves; everyone on the stream sees both', async () => {
    await withRpcApp(['--broker', 'memory', '--presence_ttl', '1'], async (server) => {
      const stream = `presence_${unique()}`;
      const id = identifier('PresenceChannel', { stream });
      const [c1, c2] = [await welcomed(server.url), await welcomed(server.url)];
      for (const c of [c1, c2]) {
        c.subscribe(id);
        assert.deepEqual(await c.next(), { identifier: id, type: 'confirm_subscription' });
      }
      c1.perform(id, { action: 'follow' });
      for (const c of [c1, c2]) assert.equal(await c.nextText(), joinFrame(id, '2024', '{"name":"Vova"}'));
      c1.perform(id, { action: 'unfollow' });
      for (const c of [c1, c2]) assert.equal(await c.nextText(), leaveFrame(id, '2024'));
      await c1.close();
      await c2.close();
    });
  });

  test('subscribe: implicit join (the joiner sees it too); leave after the client disconnects', async () => {
    await withRpcApp(['--broker', 'memory', '--presence_ttl', '1'], async (server) => {
      const stream = `presence_${unique()}`;
      const watcherId = identifier('PresenceChannel', { stream });
      const joinerId = identifier('PresenceChannel', { stream, join: true, name: 'Jack' });
      const watcher = await welcomed(`${server.url}?uid=w1`);
      watcher.subscribe(watcherId);
      assert.deepEqual(await watcher.next(), { identifier: watcherId, type: 'confirm_subscription' });
      const joiner = await welcomed(`${server.url}?uid=j1`);
      joiner.subscribe(joinerId);
      assert.deepEqual(await joiner.next(), { identifier: joinerId, type: 'confirm_subscription' });
      assert.equal(await joiner.nextText(), joinFrame(joinerId, 'j1', '{"name":"Jack"}'));
      assert.equal(await watcher.nextText(), joinFrame(watcherId, 'j1', '{"name":"Jack"}'));
      await joiner.close();
      assert.equal(await watcher.nextText(5000), leaveFrame(watcherId, 'j1'));
      await watcher.close();
    });
  });

  test('subscribe: explicit presence id shared by two sessions leaves only after the last one', async () => {
    await withRpcApp(['--broker', 'memory', '--presence_ttl', '1'], async (server) => {
      const stream = `presence_${unique()}`;
      const watcherId = identifier('PresenceChannel', { stream });
      const tabId = identifier('PresenceChannel', { stream, join: true, presence_id: '4202', name: 'Vova' });
      const watcher = await welcomed(`${server.url}?uid=w1`);
      watcher.subscribe(watcherId);
      assert.deepEqual(await watcher.next(), { identifier: watcherId, type: 'confirm_subscription' });
      const tabs = [await welcomed(`${server.url}?uid=v1`), await welcomed(`${server.url}?uid=v2`)];
      for (const tab of tabs) {
        tab.subscribe(tabId);
        assert.deepEqual(await tab.next(), { identifier: tabId, type: 'confirm_subscription' });
      }
      assert.equal(await watcher.nextText(), joinFrame(watcherId, '4202', '{"name":"Vova"}'));
      await tabs[0]?.close();
      assert.equal(await watcher.nothingWithin(2500), null, 'no leave while the second session is here');
      await tabs[1]?.close();
      assert.equal(await watcher.nextText(5000), leaveFrame(watcherId, '4202'));
      await watcher.close();
    });
  });

  test('over HTTP RPC too: CommandResponse.presence as JSON (snake_case, info as JSON text)', async () => {
    const app = new RpcApp();
    const port = await app.listenHttp(deriveKey(TEST_SECRET, 'rpc-cable'));
    const server = await startServer(['--secret', TEST_SECRET, '--rpc_host', `http://127.0.0.1:${port}/_anycable`, '--broker', 'memory']);
    try {
      const id = identifier('PresenceChannel', { stream: `presence_${unique()}` });
      const c = await welcomed(server.url);
      c.subscribe(id);
      assert.deepEqual(await c.next(), { identifier: id, type: 'confirm_subscription' });
      c.perform(id, { action: 'follow', id: 'h1', info: 'plain text' });
      assert.equal(await c.nextText(), joinFrame(id, 'h1', '"plain text"'));
      c.perform(id, { action: 'unfollow' });
      assert.equal(await c.nextText(), leaveFrame(id, 'h1'));
      await c.close();
    } finally {
      await server.stop();
      await app.stop();
    }
  });
});
