import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createCable, Channel } from '@anycable/core';
import { startServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { signToken } from '../helpers/tokens.js';
import { broadcast } from '../helpers/http.js';
import { signStreamName } from '../../src/streams/verifier.js';
import { deriveKey } from '../../src/auth/keys.js';

type Strategy = 'sub-protocol' | 'header' | undefined;

describe('@anycable/core against cablecat', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams']);
  });
  after(() => server.stop());

  for (const strategy of ['param', 'header', 'sub-protocol'] as const) {
    test(`connects with a JWT through the ${strategy} strategy and receives a stream`, async () => {
      const token = await signToken(TEST_SECRET, { ext: '{"user_id":"7"}' }, { expiresIn: 60 });
      const websocketAuthStrategy: Strategy = strategy === 'param' ? undefined : strategy;
      const cable = createCable(server.url, {
        websocketImplementation: WebSocket,
        auth: { token },
        ...(websocketAuthStrategy ? { websocketAuthStrategy } : {}),
        logLevel: 'error',
      });
      try {
        await cable.connect();
        const channel = cable.streamFrom(`room-${strategy}`);
        await channel.ensureSubscribed();
        const received = new Promise((resolve) => channel.on('message', resolve));
        const key = deriveKey(TEST_SECRET, 'broadcast-cable');
        assert.equal((await broadcast(server.http, { stream: `room-${strategy}`, data: JSON.stringify({ text: 'hi' }) }, key)).status, 201);
        assert.deepEqual(await received, { text: 'hi' });
      } finally {
        cable.disconnect();
      }
    });
  }

  test('streamFromSigned receives broadcasts of a signed stream', async () => {
    const token = await signToken(TEST_SECRET, { ext: '{"user_id":"7"}' }, { expiresIn: 60 });
    const cable = createCable(server.url, { websocketImplementation: WebSocket, auth: { token }, logLevel: 'error' });
    try {
      await cable.connect();
      const channel = cable.streamFromSigned(signStreamName(TEST_SECRET, 'secret-room'));
      await channel.ensureSubscribed();
      const received = new Promise((resolve) => channel.on('message', resolve));
      await broadcast(server.http, { stream: 'secret-room', data: '"plain"' }, deriveKey(TEST_SECRET, 'broadcast-cable'));
      assert.equal(await received, 'plain');
    } finally {
      cable.disconnect();
    }
  });

  test('tokenRefresher gets a fresh token after token_expired and the client reconnects', async () => {
    const expired = await signToken(TEST_SECRET, { ext: '{"user_id":"7"}' }, { expiresIn: -5 });
    let refreshed = 0;
    const cable = createCable(server.url, {
      websocketImplementation: WebSocket,
      auth: { token: expired },
      tokenRefresher: async (transport: { setToken(token: string): void }) => {
        refreshed++;
        transport.setToken(await signToken(TEST_SECRET, { ext: '{"user_id":"7"}' }, { expiresIn: 60 }));
      },
      logLevel: 'error',
    });
    try {
      const connected = new Promise<void>((resolve) => cable.on('connect', () => resolve()));
      const closeReason = new Promise<string>((resolve) => cable.on('close', (err?: { reason?: string }) => resolve(err?.reason ?? '')));
      await cable.connect().catch(() => undefined);
      assert.equal(await closeReason, 'token_expired');
      await connected;
      assert.equal(refreshed, 1);
      assert.equal(cable.state, 'connected');
    } finally {
      cable.disconnect();
    }
  });

  class EchoChannel extends Channel {
    static override identifier = 'EchoChannel';
  }

  test('a channel the server cannot serve without RPC is rejected, not left hanging', async () => {
    const token = await signToken(TEST_SECRET, { ext: '{"user_id":"7"}' }, { expiresIn: 60 });
    const cable = createCable(server.url, { websocketImplementation: WebSocket, auth: { token }, logLevel: 'error' });
    try {
      await cable.connect();
      const channel = new EchoChannel();
      cable.subscribe(channel);
      await assert.rejects(channel.ensureSubscribed());
    } finally {
      cable.disconnect();
    }
  });
});
