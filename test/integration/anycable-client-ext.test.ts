import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { createCable } from '@anycable/core';
import { startServer, withServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { signToken } from '../helpers/tokens.js';
import { broadcast } from '../helpers/http.js';
import { deriveKey } from '../../src/auth/keys.js';

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');

interface Meta { stream?: string; epoch?: string; offset?: number }

/**
 * The real client on actioncable-v1-ext-json behind a proxy we can cut: messages broadcast while
 * its socket is down must arrive after it reconnects, in order, each once.
 */
async function missedWhileAway(server: TestServer, expectRestore: boolean, comeBackTo: TestServer = server): Promise<void> {
  let proxy = new TcpProxy(server.port);
  const port = await proxy.start();
  const token = await signToken(TEST_SECRET, { ext: '{"user_id":"7"}' }, { expiresIn: 300 });
  const cable = createCable(`ws://127.0.0.1:${port}/cable`, {
    websocketImplementation: WebSocket,
    protocol: 'actioncable-v1-ext-json',
    protocolOptions: { pongs: true },
    auth: { token },
    reconnectStrategy: () => 100,
    logLevel: 'error',
  });
  const stream = `room-${randomBytes(5).toString('hex')}`;
  const send = async (n: number): Promise<void> => {
    assert.equal((await broadcast(server.http, { stream, data: JSON.stringify({ n }) }, BROADCAST_KEY)).status, 201);
  };
  try {
    await cable.connect();
    const channel = cable.streamFrom(stream);
    await channel.ensureSubscribed();
    const received: number[] = [];
    const metas: Meta[] = [];
    let waiter: (() => void) | null = null;
    channel.on('message', (msg, meta) => {
      received.push((msg as { n: number }).n);
      // The typings only know `id`; on ext-json the meta is the stream position.
      metas.push((meta ?? {}) as Meta);
      waiter?.();
    });
    const until = async (count: number): Promise<void> => {
      const deadline = Date.now() + 8000;
      while (received.length < count) {
        if (Date.now() > deadline) assert.fail(`got ${JSON.stringify(received)}, wanted ${count} messages`);
        await new Promise<void>((resolve) => { waiter = resolve; setTimeout(resolve, 100); });
      }
    };
    for (let n = 1; n <= 3; n++) await send(n);
    await until(3);
    assert.equal(metas[2]?.stream, stream, 'ext clients see positions');

    const disconnected = new Promise<void>((resolve) => cable.once('disconnect', () => resolve()));
    const reconnected = new Promise<{ restored?: boolean }>((resolve) => cable.once('connect', (ev: { restored?: boolean }) => resolve(ev)));
    if (comeBackTo === server) {
      proxy.cut();
    } else {
      // The load balancer now sends the client to the other node.
      await proxy.stop();
      proxy = new TcpProxy(comeBackTo.port);
      await proxy.start(port);
    }
    await disconnected;
    for (let n = 4; n <= 8; n++) await send(n);
    const event = await reconnected;
    assert.equal(event.restored === true, expectRestore, `restored: ${String(event.restored)}`);
    await until(8);
    for (let n = 9; n <= 10; n++) await send(n);
    await until(10);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(received, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const offsets = metas.map((m) => m.offset);
    assert.deepEqual(offsets, [...offsets].sort((a, b) => (a ?? 0) - (b ?? 0)));
  } finally {
    cable.disconnect();
    await proxy.stop();
  }
}

describe('@anycable/core on actioncable-v1-ext-json with the memory broker', () => {
  test('a restored session catches up on exactly the messages missed while the socket was down', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker'], (server) => missedWhileAway(server, true));
  });

  test('without session recovery the resubscribe carries the positions and gets the missed messages', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', '--sessions_ttl', '0'], (server) => missedWhileAway(server, false));
  });

  test('with the Redis broker the client comes back on another node, is restored there and catches up', async () => {
    const args = ['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', 'redis'];
    const a = await startServer(args);
    const b = await startServer(args);
    try {
      await missedWhileAway(a, true, b);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test('without a broker (no presence store) presence requests are rejected, not left hanging', async () => {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--public_streams'], async (server) => {
      const token = await signToken(TEST_SECRET, { ext: '{"user_id":"7"}' }, { expiresIn: 300 });
      const cable = createCable(server.url, { websocketImplementation: WebSocket, protocol: 'actioncable-v1-ext-json', auth: { token }, logLevel: 'error' });
      try {
        await cable.connect();
        const channel = cable.streamFrom('presence-room');
        await channel.ensureSubscribed();
        await assert.rejects(channel.presence.info(), /failed to retrieve presence/);
      } finally {
        cable.disconnect();
      }
    });
  });
});
