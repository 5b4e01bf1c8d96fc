import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_SECRET } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { broadcast } from '../helpers/http.js';
import { waitUntil } from '../helpers/wait.js';
import { withRpcApp, type Call } from '../helpers/rpc-app.js';
import { deriveKey } from '../../src/auth/keys.js';
import type { CommandMessage, DisconnectRequest } from '../../src/rpc/messages.js';

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');

async function welcomed(url: string): Promise<RawClient> {
  const client = await RawClient.connect(url);
  assert.equal(((await client.next()) as { type: string }).type, 'welcome');
  return client;
}

async function subscribed(client: RawClient, id: string): Promise<void> {
  client.subscribe(id);
  assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
}

function held(): { gate: Promise<void>; release: () => void } {
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  return { gate, release };
}

const isCommand = (sid: string, command: string) => (c: Call): boolean =>
  c.method === 'Command' && c.sid === sid && (c.request as CommandMessage).command === command;

describe('session lifecycle against a real gRPC app', () => {
  test('a close during an in-flight unsubscribe leaves the other subscriber of the stream receiving', async () => {
    await withRpcApp([], async (server, app) => {
      const id = identifier('StreamsChannel', { streams: ['lc_room'] });
      const a = await welcomed(`${server.url}?uid=a`);
      const b = await welcomed(`${server.url}?uid=b`);
      await subscribed(a, id);
      await subscribed(b, id);
      const aSid = app.callsOf('Connect')[0]!.sid;
      const hold = held();
      app.gate = (call) => (isCommand(aSid, 'unsubscribe')(call) ? hold.gate : Promise.resolve());
      a.send({ command: 'unsubscribe', identifier: id });
      await app.waitForCall(isCommand(aSid, 'unsubscribe'));
      await a.close();
      await waitUntil(() => server.app.metrics.gauge('clients_num') === 1, 'A is gone', 3000);
      hold.release();
      await app.waitForCall((c) => c.method === 'Disconnect' && c.sid === aSid);
      assert.equal(server.app.metrics.gauge('broadcast_streams_num'), 1);
      assert.equal((await broadcast(server.http, { stream: 'lc_room', data: '{"n":1}' }, BROADCAST_KEY)).status, 201);
      assert.deepEqual(await b.next(), { identifier: id, message: { n: 1 } });
      assert.deepEqual((app.callsOf('Disconnect').find((c) => c.sid === aSid)!.request as DisconnectRequest).subscriptions, []);
      await b.close();
    });
  });

  test('a close while the unsubscribe waits for an RPC slot drops the call; the other subscriber keeps receiving; Disconnect lists the channel', async () => {
    await withRpcApp(['--rpc_concurrency', '1'], async (server, app) => {
      const id = identifier('StreamsChannel', { streams: ['lc_room2'] });
      const a = await welcomed(`${server.url}?uid=a`);
      const b = await welcomed(`${server.url}?uid=b`);
      const c = await welcomed(`${server.url}?uid=c`);
      await subscribed(a, id);
      await subscribed(b, id);
      await subscribed(c, identifier('EchoChannel'));
      const [aSid, , cSid] = app.callsOf('Connect').map((call) => call.sid);
      // C's perform holds the only RPC slot, so A's unsubscribe waits for it.
      const hold = held();
      app.gate = (call) => (isCommand(cSid!, 'message')(call) ? hold.gate : Promise.resolve());
      c.perform(identifier('EchoChannel'), { action: 'echo', text: 'x' });
      await app.waitForCall(isCommand(cSid!, 'message'));
      a.send({ command: 'unsubscribe', identifier: id });
      await waitUntil(() => server.app.metrics.gauge('rpc_pending_num') === 1, 'the unsubscribe waits for a slot', 3000);
      await a.close();
      await waitUntil(() => server.app.metrics.counters.rpc_canceled_total === 1, 'the waiting call is dropped', 3000);
      hold.release();
      const disconnect = await app.waitForCall((call) => call.method === 'Disconnect' && call.sid === aSid);
      assert.equal(app.calls.filter(isCommand(aSid!, 'unsubscribe')).length, 0, 'the app never saw the dropped unsubscribe');
      assert.deepEqual((disconnect.request as DisconnectRequest).subscriptions, [id]);
      assert.equal((await broadcast(server.http, { stream: 'lc_room2', data: '{"n":2}' }, BROADCAST_KEY)).status, 201);
      assert.deepEqual(await b.next(), { identifier: id, message: { n: 2 } });
      await b.close();
      await c.close();
    });
  });

  test('Disconnect comes after the in-flight subscribe and lists the channel the app confirmed', async () => {
    await withRpcApp([], async (server, app) => {
      const id = identifier('StreamsChannel', { streams: ['lc_room3'] });
      const a = await welcomed(server.url);
      const aSid = app.callsOf('Connect')[0]!.sid;
      const hold = held();
      app.gate = (call) => (isCommand(aSid, 'subscribe')(call) ? hold.gate : Promise.resolve());
      a.subscribe(id);
      a.perform(id, { action: 'echo', text: 'queued behind the subscribe' });
      await app.waitForCall(isCommand(aSid, 'subscribe'));
      await a.close();
      await waitUntil(() => server.app.metrics.gauge('clients_num') === 0, 'A is gone', 3000);
      hold.release();
      const disconnect = await app.waitForCall((call) => call.method === 'Disconnect' && call.sid === aSid);
      const subscribeAnswer = app.answered.findIndex(isCommand(aSid, 'subscribe'));
      assert.ok(subscribeAnswer !== -1 && app.calls.indexOf(disconnect) > app.calls.findIndex(isCommand(aSid, 'subscribe')));
      assert.ok(app.answered.indexOf(disconnect) === -1 || app.answered.indexOf(disconnect) > subscribeAnswer, 'Disconnect after the subscribe answer');
      assert.deepEqual((disconnect.request as DisconnectRequest).subscriptions, [id]);
      assert.equal(app.calls.filter(isCommand(aSid, 'message')).length, 0, 'the perform waiting behind it was never sent');
      assert.equal(server.app.metrics.gauge('broadcast_streams_num'), 0, 'the confirmed streams were never entered');
    });
  });

  test('on shutdown, a subscribe in flight finishes first and its Disconnect (listing it) is flushed', async () => {
    await withRpcApp(['--shutdown_timeout', '5'], async (server, app) => {
      const id = identifier('EchoChannel');
      const a = await welcomed(server.url);
      const aSid = app.callsOf('Connect')[0]!.sid;
      const hold = held();
      app.gate = (call) => (isCommand(aSid, 'subscribe')(call) ? hold.gate : Promise.resolve());
      a.subscribe(id);
      await app.waitForCall(isCommand(aSid, 'subscribe'));
      const stopping = server.stop();
      assert.equal((await a.closed).code, 1001);
      hold.release();
      await stopping;
      const disconnect = app.callsOf('Disconnect').find((call) => call.sid === aSid);
      assert.ok(disconnect, 'Disconnect was flushed before the server stopped');
      assert.deepEqual((disconnect.request as DisconnectRequest).subscriptions, [id]);
    });
  });

  test('past --max_command_queue_size the connection is closed 1013 "Command queue full" and counted', async () => {
    await withRpcApp(['--max_command_queue_size', '4096', '--metrics_http', '/metrics'], async (server, app) => {
      const id = identifier('EchoChannel');
      const a = await welcomed(server.url);
      await subscribed(a, id);
      const aSid = app.callsOf('Connect')[0]!.sid;
      const hold = held();
      app.gate = (call) => (isCommand(aSid, 'message')(call) ? hold.gate : Promise.resolve());
      const text = 'x'.repeat(1000);
      for (let i = 0; i < 10; i++) a.perform(id, { action: 'echo', text });
      const closed = await a.closed;
      assert.deepEqual(closed, { code: 1013, reason: 'Command queue full' });
      assert.equal(server.app.metrics.counters.disconnected_command_overflow_total, 1);
      hold.release();
      await app.waitForCall((call) => call.method === 'Disconnect' && call.sid === aSid);
      assert.equal(app.calls.filter(isCommand(aSid, 'message')).length, 1, 'only the call in flight reached the app');
      const other = await welcomed(server.url);
      await subscribed(other, id);
      other.perform(id, { action: 'echo', text: 'still fine' });
      assert.deepEqual(await other.next(), { identifier: id, message: { response: 'still fine' } });
      await other.close();
    });
  });
});
