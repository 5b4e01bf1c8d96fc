import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { createCable, type Cable } from '@anycable/core';

type PubSubChannel = ReturnType<Cable['streamFrom']>;
import { startServer, type TestServer } from '../helpers/server.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

type PresenceMessage = { type?: string; id?: string; info?: unknown };

describe('@anycable/core presence API against cablecat', () => {
  let server: TestServer;
  const cables: Cable[] = [];
  before(async () => { server = await startServer(['--public', '--broker', 'memory', '--presence_ttl', '1']); });
  after(async () => {
    for (const cable of cables) cable.disconnect();
    await server.stop();
  });

  function cable(url = server.url): Cable {
    const c = createCable(url, { websocketImplementation: WebSocket, protocol: 'actioncable-v1-ext-json', reconnectStrategy: () => 100, logLevel: 'error' });
    cables.push(c);
    return c;
  }

  /** Ann (through `annUrl`) and Bob, connected and subscribed to `stream`. */
  async function annAndBob(stream: string, annUrl = server.url): Promise<{ ann: Cable; annChannel: PubSubChannel; bobChannel: PubSubChannel }> {
    const ann = cable(annUrl);
    const bob = cable();
    await ann.connect();
    await bob.connect();
    const annChannel = ann.streamFrom(stream);
    const bobChannel = bob.streamFrom(stream);
    await annChannel.ensureSubscribed();
    await bobChannel.ensureSubscribed();
    return { ann, annChannel, bobChannel };
  }

  test('join, info resolves with the record, the other client sees the leave', async () => {
    const stream = `room-${randomBytes(4).toString('hex')}`;
    const { annChannel, bobChannel } = await annAndBob(stream);
    const seenByBob: PresenceMessage[] = [];
    let wake: () => void = () => undefined;
    bobChannel.on('presence', (msg) => {
      // Info answers come through this event too; only the changes count here.
      const event = msg as PresenceMessage;
      if (event.type === 'join' || event.type === 'leave') seenByBob.push(event);
      wake();
    });
    const bobSaw = async (count: number): Promise<void> => {
      while (seenByBob.length < count) await new Promise<void>((resolve) => { wake = resolve; });
    };

    await annChannel.presence.join('ann-1', { name: 'Ann' });
    assert.deepEqual(await annChannel.presence.info(), { 'ann-1': { name: 'Ann' } });
    await bobSaw(1);
    assert.deepEqual(seenByBob[0], { type: 'join', id: 'ann-1', info: { name: 'Ann' } });
    assert.deepEqual(await bobChannel.presence.info(), { 'ann-1': { name: 'Ann' } });

    await annChannel.presence.leave();
    await bobSaw(2);
    assert.deepEqual(seenByBob[1], { type: 'leave', id: 'ann-1' });
    // Bob's presence state follows the events.
    assert.deepEqual(await bobChannel.presence.info(), {});
  });

  test('a client whose connection drops is restored, joins again by itself and never leaves', async () => {
    const stream = `room-${randomBytes(4).toString('hex')}`;
    const proxy = new TcpProxy(server.port);
    const port = await proxy.start();
    try {
      const { ann, annChannel, bobChannel } = await annAndBob(stream, `ws://127.0.0.1:${port}/cable`);
      const changes: PresenceMessage[] = [];
      bobChannel.on('presence', (msg) => {
        const event = msg as PresenceMessage;
        if (event.type === 'join' || event.type === 'leave') changes.push(event);
      });
      await annChannel.presence.join('ann-1', { name: 'Ann' });
      // join() resolves once sent: Ann's own info request comes after it on her connection.
      assert.deepEqual(await annChannel.presence.info(), { 'ann-1': { name: 'Ann' } });
      assert.deepEqual(await bobChannel.presence.info(), { 'ann-1': { name: 'Ann' } });

      const restored = new Promise<{ restored?: boolean }>((resolve) => ann.once('connect', (ev: { restored?: boolean }) => resolve(ev)));
      proxy.cut();
      assert.equal((await restored).restored, true);
      // Past the old session's TTL (1 s) and a sweep: Ann is still here, and nobody saw her leave.
      await new Promise((r) => setTimeout(r, 2500));
      assert.deepEqual(changes, [{ type: 'join', id: 'ann-1', info: { name: 'Ann' } }]);
      bobChannel.presence.reset();
      assert.deepEqual(await bobChannel.presence.info(), { 'ann-1': { name: 'Ann' } });
    } finally {
      await proxy.stop();
    }
  });
});
