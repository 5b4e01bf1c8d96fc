import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { register } from 'node:module';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type * as Serverless from '@anycable/serverless-js';
import { startServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { readmeBlock } from '../helpers/readme.js';

// The second real RPC app: the README's Node.js backend on @anycable/serverless-js, run as its own process,
// with cablecat talking HTTP RPC to it and its broadcaster posting to cablecat's /_broadcast.
const ROOT = process.cwd();
const RPC_SECRET = `rpc-${randomBytes(8).toString('hex')}`;
const BROADCAST_KEY = `bk-${randomBytes(8).toString('hex')}`;


async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/** The package as a Node app loads it: through the same directory-import hook the README shows. */
async function loadServerless(): Promise<typeof Serverless> {
  register(`data:text/javascript,${encodeURIComponent(`export async function resolve(specifier, context, next) {
    try { return await next(specifier, context); } catch (err) {
      if (err.code === 'ERR_UNSUPPORTED_DIR_IMPORT') return next(specifier + '/index.js', context);
      throw err;
    }
  }`)}`);
  return (await import('@anycable/serverless-js')) as typeof Serverless;
}

const ROOM = `room-${randomBytes(4).toString('hex')}`;
const chat = (room = ROOM): string => identifier('ChatChannel', { room });

async function connectAs(server: TestServer, query: string): Promise<RawClient> {
  const client = await RawClient.connect(`${server.url}?${query}`);
  assert.equal((await client.next() as { type: string }).type, 'welcome');
  return client;
}

async function subscribed(client: RawClient, id = chat()): Promise<void> {
  client.subscribe(id);
  assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
}

describe('@anycable/serverless-js backend (the README example) over HTTP RPC', () => {
  let backend: ChildProcess;
  let server: TestServer;
  let file: string;

  before(async () => {
    const [backendPort, apiPort] = [await freePort(), await freePort()];
    // Inside the checkout, so the example resolves @anycable/serverless-js from node_modules as an app would.
    mkdirSync(join(ROOT, 'dist/tmp'), { recursive: true });
    file = join(ROOT, 'dist/tmp', `readme-backend-${randomBytes(4).toString('hex')}.mjs`);
    writeFileSync(file, `${readmeBlock('node-backend')}\n`);
    backend = spawn(process.execPath, [file], {
      env: {
        PATH: process.env.PATH, PORT: String(backendPort), CABLECAT_BROADCAST_URL: `http://127.0.0.1:${apiPort}/_broadcast`,
        ANYCABLE_HTTP_RPC_SECRET: RPC_SECRET, ANYCABLE_BROADCAST_KEY: BROADCAST_KEY,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      backend.stdout?.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; if (out.includes('RPC backend on')) resolve(); });
      backend.once('exit', (code) => reject(new Error(`the README backend exited (${code}):\n${out}`)));
    });
    server = await startServer([
      '--secret', TEST_SECRET, '--http_rpc_secret', RPC_SECRET, '--broadcast_key', BROADCAST_KEY,
      '--rpc_host', `http://127.0.0.1:${backendPort}/_anycable`, '--http_broadcast_port', String(apiPort),
    ]);
  });

  after(async () => {
    await server?.stop();
    backend?.kill();
    rmSync(file, { force: true });
  });

  test('connect: the app identifies the user, or rejects without one', async () => {
    const alice = await connectAs(server, 'user=alice');
    await alice.close();
    const anonymous = await RawClient.connect(server.url);
    assert.deepEqual(await anonymous.next(), { type: 'disconnect', reason: 'unauthorized' });
    await anonymous.closed;
  });

  test('subscribe: confirmed with a room, rejected without one', async () => {
    const alice = await connectAs(server, 'user=alice');
    await subscribed(alice);
    const noRoom = identifier('ChatChannel');
    alice.subscribe(noRoom);
    assert.deepEqual(await alice.next(), { identifier: noRoom, type: 'reject_subscription' });
    await alice.close();
  });

  test('perform: the app broadcasts through /_broadcast to every subscriber; a transmission reaches only the caller', async () => {
    const alice = await connectAs(server, 'user=alice');
    const bob = await connectAs(server, 'user=bob');
    await subscribed(alice);
    await subscribed(bob);
    alice.perform(chat(), { action: 'whoami' });
    assert.deepEqual(await alice.next(), { identifier: chat(), message: { you: 'alice' } });
    alice.perform(chat(), { action: 'speak', text: 'hello room' });
    const expected = { identifier: chat(), message: { from: 'alice', text: 'hello room' } };
    assert.deepEqual(await alice.next(), expected);
    // Bob's first frame is the broadcast: alice's whoami answer did not reach him.
    assert.deepEqual(await bob.next(), expected);
    await Promise.all([alice.close(), bob.close()]);
  });

  test('identification by the app-minted JWT (identificator): no Connect call, identifiers reach commands', async () => {
    const { identificator } = await loadServerless();
    const token = await identificator(TEST_SECRET, '1h').generateToken({ user: 'carol' });
    // No ?user=: the backend's connect would reject, so a welcome proves cablecat verified the JWT itself.
    const carol = await connectAs(server, `jid=${token}`);
    await subscribed(carol);
    carol.perform(chat(), { action: 'whoami' });
    assert.deepEqual(await carol.next(), { identifier: chat(), message: { you: 'carol' } });
    await carol.close();
  });
});
