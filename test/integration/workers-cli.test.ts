// --workers as users run it: the CLI process, its logs, its signals, its config errors.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { RpcApp } from '../helpers/rpc-app.js';
import { availableParallelism } from 'node:os';
import { loadConfig } from '../../src/config/load.js';

const ROOT = process.cwd();
const CLI = join(ROOT, 'bin/cablecat.js');
const BASE_ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
const ARGS = ['--port', '0', '--http_broadcast_port', '0', '--host', '127.0.0.1', '--noauth', '--norpc', '--public_streams', '--log_format', 'json', '--secret', 'a-long-random-secret-for-the-cli-test'];

interface Running {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  readonly port: number;
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startCli(args: readonly string[]): Promise<Running> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: BASE_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => { out += chunk; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const started = out.split('\n').find((l) => l.includes('"msg":"cablecat started"'));
      if (started) resolve(Number(/:(\d+)$/.exec((JSON.parse(started) as { address: string }).address)?.[1]));
    });
    void exited.then(() => reject(new Error(`the server exited before it started:\n${out}`)));
  });
  return { child, port, output: () => out, exited };
}

/** A raw process abort (a worker thread ending with open uWS handles) prints this and exits by SIGABRT. */
function assertNoAbort(output: string, exit: { code: number | null; signal: NodeJS.Signals | null }): void {
  assert.equal(exit.signal, null, `the process died by a signal:\n${output}`);
  assert.doesNotMatch(output, /Assertion failed|uv_loop_close|Aborted/);
}

describe('cablecat --workers 2 (the CLI process)', () => {
  test('starts as one node (one start log, workers=2), serves, and stops gracefully on SIGTERM with exit 0', async () => {
    const server = await startCli(['--workers', '2', ...ARGS]);
    const client = await RawClient.connect(`ws://127.0.0.1:${server.port}/cable`);
    assert.equal((await client.next() as { type: string }).type, 'welcome');
    const id = identifier('$pubsub', { stream_name: 'cli' });
    client.subscribe(id);
    assert.deepEqual(await client.next(), { identifier: id, type: 'confirm_subscription' });
    const starts = server.output().split('\n').filter((l) => l.includes('"msg":"cablecat started"'));
    assert.equal(starts.length, 1);
    assert.equal((JSON.parse(starts[0] ?? '{}') as { workers: number }).workers, 2);
    server.child.kill('SIGTERM');
    assert.equal(await client.nextText(), '{"type":"disconnect","reason":"server_restart","reconnect":true}');
    assert.equal((await client.closed).code, 1001);
    const exit = await server.exited;
    assertNoAbort(server.output(), exit);
    assert.equal(exit.code, 0);
    assert.match(server.output(), /"msg":"shutdown complete"/);
  });

  test('a second signal during shutdown exits at once (code 1) after closing the workers\' sockets, without aborting', async () => {
    // The app holds every Disconnect call: the graceful stop waits on it when the second signal comes.
    const app = new RpcApp();
    const rpcPort = await app.listenGrpc();
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => { release = resolve; });
    app.gate = async (call) => { if (call.method === 'Disconnect') await held; };
    try {
      const args = ARGS.filter((a) => a !== '--norpc' && a !== '--noauth');
      const server = await startCli(['--workers', '2', '--shutdown_timeout', '30', '--rpc_host', `127.0.0.1:${rpcPort}`, ...args]);
      const client = await RawClient.connect(`ws://127.0.0.1:${server.port}/cable`);
      assert.equal((await client.next() as { type: string }).type, 'welcome');
      server.child.kill('SIGTERM');
      await app.waitForCall((call) => call.method === 'Disconnect');
      server.child.kill('SIGINT');
      const exit = await server.exited;
      assertNoAbort(server.output(), exit);
      assert.equal(exit.code, 1);
      assert.match(server.output(), /"msg":"second signal, exiting now"/);
    } finally {
      release();
      await app.stop();
    }
  });

  test('--workers takes auto or 1..256; anything else is a config error (exit 2) naming the flag', () => {
    for (const bad of ['0', '-1', 'many', '257', '1.5']) {
      const r = spawnSync(process.execPath, [CLI, '--workers', bad, ...ARGS], { encoding: 'utf8', env: BASE_ENV, timeout: 20_000 });
      assert.equal(r.status, 2, `--workers ${bad}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`--workers: "${bad.replace('.', '\\.')}" must be auto or a number from 1 to 256`));
    }
    // auto is one worker per core (at most 256), from the flag or the env.
    for (const [argv, env] of [[['--workers', 'auto'], {}], [[], { ANYCABLE_WORKERS: 'auto' }]] as const) {
      assert.equal(loadConfig([...argv], env).config.workers, Math.min(256, availableParallelism()));
    }
    const env = spawnSync(process.execPath, [CLI, '--print-config', ...ARGS], { encoding: 'utf8', env: { ...BASE_ENV, ANYCABLE_WORKERS: 'auto' }, timeout: 20_000 });
    assert.equal(env.status, 0, env.stderr);
    assert.equal((JSON.parse(env.stdout) as Record<string, unknown>).workers, 'auto');
  });
});
