import assert from 'node:assert/strict';
import { TEST_SECRET, type TestServer } from './server.js';
import { RawClient, identifier } from './ws-client.js';
import { broadcast } from './http.js';
import { signToken } from './tokens.js';
import { deriveKey } from '../../src/auth/keys.js';

export const EXT = ['actioncable-v1-ext-json'];
export const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');

/** An ext-json client (user 7 by JWT) past its welcome; `query` is appended to the URL (`&sid=…`). */
export async function connectExt(server: Pick<TestServer, 'url'>, opts: { protocols?: string[]; query?: string; headers?: Record<string, string> } = {}): Promise<{ client: RawClient; welcome: Record<string, unknown> }> {
  const token = await signToken(TEST_SECRET, { ext: '{"user_id":"7"}' }, { expiresIn: 300 });
  const client = await RawClient.connect(`${server.url}?jid=${token}${opts.query ?? ''}`, { protocols: opts.protocols ?? EXT, headers: opts.headers ?? {} });
  const welcome = (await client.next()) as Record<string, unknown>;
  assert.equal(welcome.type, 'welcome');
  return { client, welcome };
}

/** Subscribes to a `$pubsub` stream, with an optional history request, and waits for the confirmation. */
export async function subscribeStream(client: RawClient, stream: string, history?: unknown): Promise<string> {
  const id = identifier('$pubsub', { stream_name: stream });
  client.send({ command: 'subscribe', identifier: id, ...(history === undefined ? {} : { history }) });
  assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
  return id;
}

/** Broadcasts each value as JSON data on `stream`, one at a time, each answered 201. */
export async function publishEach(server: Pick<TestServer, 'http'>, stream: string, ...datas: unknown[]): Promise<void> {
  for (const data of datas) assert.equal((await broadcast(server.http, { stream, data: JSON.stringify(data) }, BROADCAST_KEY)).status, 201);
}

/** A broadcast frame of a reliable stream, with its position. */
export interface Positioned { identifier: string; message: unknown; stream_id: string; epoch: string; offset: number }

/** Frames until (and without) the one of `type`, e.g. the history sent before `confirm_history`. */
export async function framesUntil(client: RawClient, type: string, timeoutMs = 3000): Promise<Positioned[]> {
  const out: Positioned[] = [];
  for (;;) {
    const frame = (await client.next(timeoutMs)) as Positioned & { type?: string };
    if (frame.type === type) return out;
    out.push(frame);
  }
}
