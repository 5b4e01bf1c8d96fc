import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import WebSocket from 'ws';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { withServer, TEST_SECRET } from '../helpers/server.js';
import { sleep } from '../helpers/http.js';
import { chromium } from 'playwright-core';
import { readmeBlock } from '../helpers/readme.js';

// The same Chromium as the SSE browser test (scripts/ensure-chromium.js installs it).
const CHROMIUM = process.env.CABLECAT_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const ROOT = process.cwd();
const CLI = join(ROOT, 'dist/src/cli/main.js');


/** Waits for a condition on something that grows (stdout, received frames) without sleeping blindly. */
async function until<T>(probe: () => T | undefined, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface QuickStart {
  readonly token: string;
  readonly broadcastKey: string;
  readonly signed: string;
  readonly browserLine: string;
  readonly curlLine: string;
  readonly port: number;
  readonly apiPort: number;
}

describe('quick start: npm start in development ends in a message', () => {
  let child: ChildProcessWithoutNullStreams;
  let out = '';
  let qs: QuickStart;

  before(async () => {
    // As `npm start` on a fresh checkout: no secret, no RPC app running, development; free ports for the test.
    child = spawn(process.execPath, [CLI, '--port', '0', '--http_broadcast_port', '0', '--host', '127.0.0.1', '--log_format', 'json'],
      { env: { PATH: process.env.PATH }, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    await until(() => (out.includes('The console then shows') ? true : undefined), 'the quick start text');
    const lines = out.split('\n');
    const after = (prefix: string): string => (lines[lines.findIndex((l) => l.startsWith(prefix)) + 1] ?? '').trim();
    const started = JSON.parse(lines.find((l) => l.includes('"cablecat started"')) ?? '{}') as { address: string; http_api: string };
    qs = {
      token: /Client token \(identifiers \{"user_id":"test"\}, valid 24 h\): (\S+)/.exec(out)?.[1] ?? '',
      broadcastKey: /Broadcast key: (\S+)/.exec(out)?.[1] ?? '',
      signed: /Signed name of the stream "demo": (\S+)/.exec(out)?.[1] ?? '',
      browserLine: after('1. Subscribe'),
      curlLine: after('2. Broadcast'),
      port: Number(new URL(started.address).port),
      apiPort: Number(new URL(started.http_api).port),
    };
  });
  after(async () => {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  });

  /** README placeholders → this run's values and ports. */
  function fill(snippet: string): string {
    return snippet
      .replaceAll('ws://localhost:8080', `ws://127.0.0.1:${qs.port}`)
      .replaceAll('http://localhost:8090', `http://127.0.0.1:${qs.apiPort}`)
      .replaceAll('TOKEN', qs.token)
      .replaceAll('SIGNED_STREAM', qs.signed)
      .replaceAll('BROADCAST_KEY', qs.broadcastKey);
  }

  test('it prints a token, the broadcast key and the README\'s two lines with the values filled in', () => {
    assert.match(qs.token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.match(qs.broadcastKey, /^[0-9a-f]{64}$/);
    assert.equal(fill(readmeBlock('browser')), qs.browserLine);
    assert.equal(fill(readmeBlock('curl')), qs.curlLine);
  });

  test('the browser-console line subscribes and the curl line delivers a message to it', async () => {
    const logged: string[] = [];
    const sockets: WebSocket[] = [];
    // The browser's WebSocket and console, played by ws and an array.
    class BrowserWebSocket extends WebSocket {
      constructor(url: string, protocols: string) { super(url, protocols); sockets.push(this); }
    }
    runInNewContext(qs.browserLine, { WebSocket: BrowserWebSocket, JSON, console: { log: (x: unknown) => logged.push(String(x)) } });
    try {
      await until(() => logged.find((f) => f.includes('confirm_subscription')), 'confirm_subscription');
      const curlOutput = execFileSync('sh', ['-c', qs.curlLine], { encoding: 'utf8' });
      assert.equal(curlOutput, '', 'curl prints nothing on 201');
      const frame = await until(() => logged.find((f) => f.includes('Hello from cablecat')), 'the broadcast');
      assert.deepEqual(JSON.parse(frame), {
        identifier: JSON.stringify({ channel: '$pubsub', signed_stream_name: qs.signed }),
        message: { text: 'Hello from cablecat' },
      });
    } finally {
      for (const ws of sockets) ws.close();
    }
  });

  test('in Chromium: the line pasted into the console of the printed page logs the message the curl line sends', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      const logged: string[] = [];
      page.on('console', (msg) => logged.push(msg.text()));
      const pageUrl = /1\. Subscribe: open (\S+) in a browser/.exec(out)?.[1] ?? '';
      assert.equal(pageUrl, `http://127.0.0.1:${qs.port}/health`);
      await page.goto(pageUrl);
      // addScriptTag runs the text as a top-level script, as the console does with a pasted line.
      await page.addScriptTag({ content: qs.browserLine });
      await until(() => logged.find((f) => f.includes('confirm_subscription')), 'confirm_subscription in the browser', 10_000);
      execFileSync('sh', ['-c', qs.curlLine]);
      const frame = await until(() => logged.find((f) => f.includes('Hello from cablecat')), 'the broadcast in the browser', 10_000);
      assert.deepEqual(JSON.parse(frame), {
        identifier: JSON.stringify({ channel: '$pubsub', signed_stream_name: qs.signed }),
        message: { text: 'Hello from cablecat' },
      });
    } finally {
      await browser.close();
    }
  });

  test('a refused subscription is logged at info with the reason', async () => {
    const client = await RawClient.connect(`ws://127.0.0.1:${qs.port}/cable?jid=${qs.token}`);
    await client.next();
    const id = identifier('$pubsub', { stream_name: 'demo' });
    client.subscribe(id);
    assert.deepEqual(await client.next(), { identifier: id, type: 'reject_subscription' });
    const line = await until(() => out.split('\n').find((l) => l.includes('"subscription rejected"')), 'the log line');
    const record = JSON.parse(line) as { level: number | string; reason: string; identifier: string };
    assert.ok(record.level === 30 || record.level === 'info', `info level: ${String(record.level)}`);
    assert.equal(record.reason, 'public streams are off: subscribe with a signed_stream_name, or start with --public_streams');
    await client.close();
  });

  for (const name of ['node', 'web'] as const) {
    test(`the README's ${name} client snippet receives a broadcast`, async () => {
      let code = fill(readmeBlock(name));
      // @anycable/web is @anycable/core with the browser's WebSocket: run it as such, with ws as that WebSocket.
      if (name === 'web') code = `import WebSocket from 'ws'\nglobalThis.WebSocket = WebSocket\n${code.replace("'@anycable/web'", "'@anycable/core'")}`;
      const file = join(ROOT, `.readme-${name}-${process.pid}.mjs`);
      writeFileSync(file, `${code}\nsetTimeout(() => process.exit(0), 8000)\n`);
      const snippet = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let printed = '';
      snippet.stdout.on('data', (d: Buffer) => { printed += d.toString(); });
      try {
        // The snippet gives no signal when subscribed: broadcast until it prints the message.
        await until(() => {
          if (printed.includes("{ text: 'Hello from cablecat' }")) return true;
          execFileSync('sh', ['-c', qs.curlLine]);
          return undefined;
        }, `${name} snippet output`, 6000);
      } finally {
        snippet.kill();
        rmSync(file, { force: true });
      }
    });
  }
});

test('the README\'s jose snippet mints a token the server accepts', async () => {
  const file = join(ROOT, `.readme-jose-${process.pid}.mjs`);
  writeFileSync(file, readmeBlock('jose'));
  try {
    const token = execFileSync(process.execPath, [file], { env: { PATH: process.env.PATH, ANYCABLE_SECRET: TEST_SECRET }, encoding: 'utf8' }).trim();
    await withServer(['--secret', TEST_SECRET, '--norpc'], async (server) => {
      const client = await RawClient.connect(`${server.url}?jid=${token}`);
      assert.equal(((await client.next()) as { type: string }).type, 'welcome');
      await client.close();
    });
  } finally {
    rmSync(file, { force: true });
  }
});
