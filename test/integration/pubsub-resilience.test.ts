import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { withServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { freePort } from '../helpers/tcp-proxy.js';
import { identifier } from '../helpers/ws-client.js';
import { broadcast, sleep } from '../helpers/http.js';
import { deriveKey } from '../../src/auth/keys.js';
import { streamSubscriber } from '../helpers/streams.js';

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');


async function untilLogged(server: TestServer, msg: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = server.logs.records().find((r) => r.msg === msg);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no "${msg}" log line`);
    await sleep(20);
  }
}

test('an HTTP broadcast refused by pub/sub (broker down, hold full) answers 503 with a JSON error and is counted', async () => {
  const deadPort = await freePort();
  await withServer(['--secret', TEST_SECRET, '--norpc', '--pubsub', 'redis', '--redis_url', `redis://127.0.0.1:${deadPort}`], async (server) => {
    const one = await broadcast(server.http, { stream: 'held', data: '1' }, BROADCAST_KEY);
    assert.equal(one.status, 201, 'held while the broker is down');
    // The hold takes 10,000 publications; one batch goes past it.
    const batch = Array.from({ length: 10_000 }, (_, i) => ({ stream: `held-${i % 10}`, data: String(i) }));
    const answer = await broadcast(server.http, batch, BROADCAST_KEY);
    assert.equal(answer.status, 503);
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.equal((answer.json() as { error: string }).error, 'pubsub_unavailable');
    assert.equal(server.app.metrics.counters.failed_broadcast_msg_total, 1);
    assert.ok(server.logs.records().some((r) => r.msg === 'broadcast dropped: pub/sub refused it'));
  });
});

test('a per-stream Redis SUBSCRIBE that fails is logged and retried until the stream recovers', async () => {
  const admin = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
  await admin.connect();
  const user = `cablecat_lc_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(8).toString('hex');
  const stream = `acl-${randomBytes(4).toString('hex')}`;
  // The user may use the remote-command channel but not this stream's channel: its SUBSCRIBE fails (NOPERM).
  await admin.call('ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '+@all', 'resetchannels', '&cablecat:internal');
  try {
    await withServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--pubsub', 'redis', '--redis_url', `redis://${user}:${password}@127.0.0.1:6379`], async (server) => {
      const { client, id } = await streamSubscriber(server, stream);
      const failed = await untilLogged(server, 'redis stream subscribe failed');
      assert.equal(failed.stream, stream);
      assert.equal(failed.level, 40);
      await admin.call('ACL', 'SETUSER', user, `&cablecat:stream:${stream}`);
      const recovered = await untilLogged(server, 'redis stream subscribe recovered');
      assert.equal(recovered.stream, stream);
      assert.equal((await broadcast(server.http, { stream, data: '"after recovery"' }, BROADCAST_KEY)).status, 201);
      assert.deepEqual(await client.next(), { identifier: id, message: 'after recovery' });
      await client.close();
    });
  } finally {
    await admin.call('ACL', 'DELUSER', user);
    admin.disconnect();
  }
});
