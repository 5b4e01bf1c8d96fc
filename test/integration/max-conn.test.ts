// --max_conn with SSE requests still on their way in (a POST body arriving late, a client leaving before
// it ends): the same answers from one thread and from a --workers node, and no place lost.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startServer, TEST_SECRET } from '../helpers/server.js';
import { startCluster } from '../helpers/cluster.js';
import { RawClient } from '../helpers/ws-client.js';
import { sleep } from '../helpers/http.js';
import { waitUntil } from '../helpers/wait.js';

const ARGS = ['--secret', TEST_SECRET, '--norpc', '--noauth', '--public_streams', '--sse'];

/** A POST to the SSE endpoint whose body has only begun: its head is in, it waits for the rest. */
async function latePost(port: number): Promise<{ socket: Socket; status: Promise<string> }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const status = new Promise<string>((resolve) => {
    socket.once('data', (d: Buffer) => resolve(d.toString().split('\r\n')[0] ?? ''));
    socket.once('close', () => resolve('closed'));
  });
  socket.write('POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"command":"subscribe"');
  return { socket, status };
}

/** Whether a WebSocket is let in (true) or refused with 503 (false). */
async function wsAdmitted(url: string): Promise<boolean> {
  const client = new RawClient(url);
  try {
    await client.opened;
  } catch {
    assert.equal(client.unexpectedStatus, 503);
    return false;
  }
  client.close();
  await client.closed;
  return true;
}

const shapes = [
  { name: 'one thread', start: (args: string[]) => startServer(args) },
  { name: '--workers 2', start: (args: string[]) => startCluster(args) },
] as const;

for (const shape of shapes) describe(`--max_conn and SSE requests on their way in (${shape.name})`, () => {
  test('a POST still reading its body holds its place; a client leaving before the body ends gives it back', async () => {
    const server = await shape.start([...ARGS, '--max_conn', '1']);
    try {
      const first = await latePost(server.port);
      await sleep(100);
      // The place is taken by the POST: a WebSocket and a second POST are refused.
      assert.equal(await wsAdmitted(server.url), false);
      const second = await latePost(server.port);
      assert.equal(await second.status, 'HTTP/1.1 503 Service Unavailable');
      second.socket.destroy();
      // The first client leaves before its body ends: the place comes back.
      first.socket.destroy();
      await waitUntil(() => wsAdmitted(server.url), 'the place to come back');
      // And only one: with the WebSocket gone, exactly one of two late POSTs gets in.
      const a = await latePost(server.port);
      const b = await latePost(server.port);
      const firstAnswer = await Promise.race([Promise.any([a.status, b.status]), sleep(2000).then(() => 'neither answered')]);
      assert.equal(firstAnswer, 'HTTP/1.1 503 Service Unavailable', 'one of the two is refused, the other waits for its body');
      const third = await latePost(server.port);
      assert.equal(await third.status, 'HTTP/1.1 503 Service Unavailable');
      for (const p of [a, b, third]) p.socket.destroy();
    } finally {
      await server.stop();
    }
  });
});
