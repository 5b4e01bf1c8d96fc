import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, type TestServer } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { httpRequest } from '../helpers/http.js';
import { waitUntil } from '../helpers/wait.js';

const unique = (): string => randomBytes(4).toString('hex');

/** /health answers 200 once the broker is reachable (503 "Broker unavailable" before). */
async function brokerUp(server: TestServer): Promise<boolean> {
  return (await httpRequest(`${server.http}/health`)).status === 200;
}

function presenceFrame(id: string, message: string): string {
  return `{"type":"presence","identifier":${JSON.stringify(id)},"message":${message}}`;
}

async function member(server: TestServer, stream: string): Promise<{ client: RawClient; id: string }> {
  const client = await RawClient.connect(server.url, { protocols: ['actioncable-v1-ext-json'] });
  assert.equal((await client.next() as { type: string }).type, 'welcome');
  const id = identifier('$pubsub', { stream_name: stream });
  client.subscribe(id);
  assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
  return { client, id };
}

function join(client: RawClient, id: string, pid: string, info: unknown): void {
  client.send({ command: 'join', identifier: id, presence: { id: pid, info } });
}

async function info(client: RawClient, id: string): Promise<unknown> {
  client.send({ command: 'presence', identifier: id, data: {} });
  return client.next();
}

function sortedRecords(answer: unknown): unknown {
  const message = (answer as { message: { total: number; records: Array<{ id: string }> } }).message;
  return { ...message, records: [...message.records].sort((x, y) => x.id.localeCompare(y.id)) };
}

const clusters: Array<[string, string[]]> = [
  ['Redis broker and pub/sub', ['--broker', 'redis', '--redis_url', 'redis://127.0.0.1:6379']],
  ['NATS broker (KV) and pub/sub', ['--broker', 'nats', '--nats_servers', 'nats://127.0.0.1:4222']],
];

for (const [name, brokerArgs] of clusters) describe(`presence across two nodes (${name})`, () => {
  let node1: TestServer;
  let node2: TestServer;
  before(async () => {
    // A TTL of 2 s: with 1 s, a refresh (every TTL/2) late on a loaded machine let a live presence expire.
    const args = ['--public', ...brokerArgs, '--presence_ttl', '2'];
    node1 = await startServer(args);
    node2 = await startServer(args);
    await waitUntil(async () => await brokerUp(node1) && await brokerUp(node2), 'both nodes reach the broker', 10_000);
  });
  after(async () => {
    await node1.stop();
    await node2.stop();
  });

  test('a join on one node reaches subscribers on the other; both answer info with every member', async () => {
    const stream = `room-${unique()}`;
    const a = await member(node1, stream);
    const b = await member(node2, stream);
    join(a.client, a.id, 'ann', { name: 'Ann' });
    const joinAnn = presenceFrame(a.id, '{"type":"join","id":"ann","info":{"name":"Ann"}}');
    assert.equal(await a.client.nextText(5000), joinAnn);
    assert.equal(await b.client.nextText(5000), joinAnn);
    join(b.client, b.id, 'bob', 'Bob');
    const joinBob = presenceFrame(a.id, '{"type":"join","id":"bob","info":"Bob"}');
    assert.equal(await a.client.nextText(5000), joinBob);
    assert.equal(await b.client.nextText(5000), joinBob);
    const expected = { type: 'info', total: 2, records: [{ id: 'ann', info: { name: 'Ann' } }, { id: 'bob', info: 'Bob' }] };
    assert.deepEqual(sortedRecords(await info(a.client, a.id)), expected);
    assert.deepEqual(sortedRecords(await info(b.client, b.id)), expected);
    await a.client.close();
    await b.client.close();
  });

  test('one id on both nodes counts once; it leaves when its last session (on either node) leaves', async () => {
    const stream = `room-${unique()}`;
    const watcher = await member(node2, stream);
    const tab1 = await member(node1, stream);
    const tab2 = await member(node2, stream);
    join(tab1.client, tab1.id, 'u1', 1);
    assert.equal(await watcher.client.nextText(5000), presenceFrame(watcher.id, '{"type":"join","id":"u1","info":1}'));
    join(tab2.client, tab2.id, 'u1', 2);
    tab1.client.send({ command: 'leave', identifier: tab1.id });
    assert.equal(await watcher.client.nothingWithin(400), null, 'no second join, no leave while the other node still has u1');
    tab2.client.send({ command: 'leave', identifier: tab2.id });
    assert.equal(await watcher.client.nextText(5000), presenceFrame(watcher.id, '{"type":"leave","id":"u1"}'));
    for (const c of [watcher, tab1, tab2]) await c.client.close();
  });

  test('a member who disconnects from one node leaves after the TTL, as seen on the other node', async () => {
    const stream = `room-${unique()}`;
    const watcher = await member(node2, stream);
    const a = await member(node1, stream);
    join(a.client, a.id, 'gone', null);
    assert.equal(await watcher.client.nextText(5000), presenceFrame(watcher.id, '{"type":"join","id":"gone","info":null}'));
    await a.client.close();
    assert.equal(await watcher.client.nextText(5000), presenceFrame(watcher.id, '{"type":"leave","id":"gone"}'));
    assert.deepEqual(sortedRecords(await info(watcher.client, watcher.id)), { type: 'info', total: 0, records: [] });
    await watcher.client.close();
  });
});

describe('presence while Redis is unreachable', () => {
  test('info gets the error answer and join is refused at once (counted); both work again once Redis is back', async () => {
    const proxy = new TcpProxy(6379);
    const port = await proxy.start();
    const server = await startServer(['--public', '--broker', 'redis', '--redis_url', `redis://127.0.0.1:${port}`, '--presence_ttl', '1']);
    try {
      await waitUntil(() => brokerUp(server), 'the node reaches Redis', 10_000);
      const a = await member(server, `room-${unique()}`);
      await proxy.stop();
      await waitUntil(async () => !await brokerUp(server), 'the node notices Redis is gone', 10_000);
      const { presence_errors_total: errors, failed_client_msg_total: failed } = server.app.metrics.counters;
      join(a.client, a.id, 'u1', 1);
      assert.deepEqual(await info(a.client, a.id), { type: 'presence', identifier: a.id, message: { type: 'error', total: 0 } });
      assert.equal(server.app.metrics.counters.presence_errors_total - errors, 2);
      assert.equal(server.app.metrics.counters.failed_client_msg_total - failed, 2);
      assert.ok(server.logs.text.includes('presence store call failed'));
      await proxy.start(port);
      await waitUntil(() => brokerUp(server), 'the node reaches Redis again', 10_000);
      join(a.client, a.id, 'u1', 1);
      assert.equal(await a.client.nextText(5000), presenceFrame(a.id, '{"type":"join","id":"u1","info":1}'));
      assert.deepEqual(sortedRecords(await info(a.client, a.id)), { type: 'info', total: 1, records: [{ id: 'u1', info: 1 }] });
      await a.client.close();
    } finally {
      await server.stop();
      await proxy.stop();
    }
  });
});
