import assert from 'node:assert/strict';
import type { TestServer } from './server.js';
import { RawClient, identifier } from './ws-client.js';
import { signToken } from './tokens.js';
import { TEST_SECRET } from './server.js';

/** A raw client that got its welcome and a confirmed `$pubsub` subscription to `stream`. */
export async function streamSubscriber(server: TestServer, stream: string, token?: string): Promise<{ client: RawClient; id: string }> {
  const jwt = token ?? await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 300 });
  const client = await RawClient.connect(`${server.url}?jid=${jwt}`);
  assert.equal(((await client.next()) as { type: string }).type, 'welcome');
  const id = identifier('$pubsub', { stream_name: stream });
  client.subscribe(id);
  assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
  return { client, id };
}
