import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join, resolve, sep } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { withRpcApp } from '../helpers/rpc-app.js';
import { startServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { signToken } from '../helpers/tokens.js';
import { broadcast, httpRequest } from '../helpers/http.js';
import { signStreamName } from '../../src/streams/verifier.js';
import { deriveKey } from '../../src/auth/keys.js';

// The clients as users meet them: @rails/actioncable and @anycable/web loaded as ES modules (an import map
// into node_modules, no bundler) by a page in Debian's Chromium, talking to cablecat over real sockets.

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');
const CHROMIUM = process.env.CABLECAT_CHROMIUM || '/usr/bin/chromium';
// playwright's launch() gives every browser a fresh temporary --user-data-dir of its own (and refuses one in args).
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const suffix = (): string => Math.random().toString(36).slice(2, 10);
const userToken = (user: string, expiresIn: number): Promise<string> =>
  signToken(TEST_SECRET, { ext: JSON.stringify({ user_id: user }) }, { expiresIn });

/** The npm packages the page imports, each served from its own directory under /pkg/<name>/. */
function packageDirs(): Map<string, string> {
  const here = createRequire(import.meta.url);
  // Node's own lookup path (not require.resolve: some packages export no ./package.json).
  const dirOf = (req: NodeJS.Require, name: string): string => {
    const dir = (req.resolve.paths(name) ?? []).map((base) => join(base, name)).find((d) => existsSync(join(d, 'package.json')));
    if (!dir) throw new Error(`${name} is not installed (npm install)`);
    return dir;
  };
  const core = dirOf(here, '@anycable/core');
  return new Map([
    ['@rails/actioncable', dirOf(here, '@rails/actioncable')],
    ['@anycable/web', dirOf(here, '@anycable/web')],
    ['@anycable/core', core],
    ['@hotwired/turbo-rails', dirOf(here, '@hotwired/turbo-rails')],
    ['@hotwired/turbo', dirOf(createRequire(resolve(dirOf(here, '@hotwired/turbo-rails'), 'package.json')), '@hotwired/turbo')],
    // nanoevents as @anycable/core resolves it (its own copy if it has one).
    ['nanoevents', dirOf(createRequire(resolve(core, 'package.json')), 'nanoevents')],
  ]);
}

const IMPORTS = {
  '@rails/actioncable': '/pkg/@rails/actioncable/app/assets/javascripts/actioncable.esm.js',
  '@anycable/web': '/pkg/@anycable/web/index.js',
  '@anycable/core': '/pkg/@anycable/core/index.js',
  nanoevents: '/pkg/nanoevents/index.js',
  '@hotwired/turbo-rails': '/pkg/@hotwired/turbo-rails/app/javascript/turbo/index.js',
  '@hotwired/turbo': '/pkg/@hotwired/turbo/dist/turbo.es2017-esm.js',
  // turbo-rails loads Rails' client from its sources (as a bundler would resolve them).
  '@rails/actioncable/src': '/pkg/@rails/actioncable/src/index.js',
};

// The page's code (plain browser JS). Everything it sees goes into `events` for the test to read.
const PAGE_SCRIPT = `
import * as ActionCable from '@rails/actioncable';
import { createCable, fetchTokenFromHTML } from '@anycable/web';
const events = [];
const record = (who, event, data) => events.push(data === undefined ? { who, event } : { who, event, data });
const subs = {};
let cable = null;
const watch = (c) => {
  cable = c;
  c.on('connect', (ev) => record('cable', 'connect', { reconnect: ev.reconnect, restored: ev.restored }));
  c.on('disconnect', (ev) => record('cable', 'disconnect', ev && ev.reason));
  c.on('close', (ev) => record('cable', 'close', ev && ev.reason));
};
const channels = {};
const follow = async (name, channel) => {
  channels[name] = channel;
  channel.on('message', (msg, meta) => record(name, 'message', meta && meta.stream ? { msg, meta } : msg));
  channel.on('presence', (ev) => record(name, 'presence', ev));
  await channel.ensureSubscribed();
  record(name, 'subscribed');
};
window.cablecat = {
  events: () => events,
  actionCable(url, stream) {
    const consumer = ActionCable.createConsumer(url);
    const callbacks = (name) => ({
      connected(data) { record(name, 'connected', data); },
      disconnected(data) { record(name, 'disconnected', data); },
      rejected() { record(name, 'rejected'); },
      received(data) { record(name, 'received', data); },
    });
    subs.consumer = consumer;
    subs.streams = consumer.subscriptions.create({ channel: 'StreamsChannel', streams: [stream] }, callbacks('streams'));
  },
  actionCableReject() {
    subs.consumer.subscriptions.create({ channel: 'RejectChannel' }, {
      connected() { record('reject', 'connected'); },
      rejected() { record('reject', 'rejected'); },
    });
  },
  perform(action, data) { subs.streams.perform(action, data); },
  setCookie(cookie) { document.cookie = cookie; },
  rawSocket(url) {
    // A bare browser WebSocket: what a refused upgrade looks like to any client.
    const socket = new WebSocket(url, ['actioncable-v1-json']);
    socket.onopen = () => record('raw', 'open', socket.protocol);
    socket.onerror = () => record('raw', 'error');
    socket.onclose = (ev) => record('raw', 'close', { code: ev.code, wasClean: ev.wasClean });
  },
  anyCable(url, token, protocol, websocketAuthStrategy) {
    // A short fixed reconnect delay instead of the 1.5-9 s default backoff: keeps the test fast.
    const opts = { auth: { token }, protocol, logLevel: 'error', reconnectStrategy: () => 100 };
    if (websocketAuthStrategy) opts.websocketAuthStrategy = websocketAuthStrategy;
    watch(createCable(url, opts));
  },
  whisper(name, data) { return channels[name].whisper(data); },
  anyCableFromMeta(protocol) {
    // URL, token (and history timestamp) come from the page's <meta> tags; a refresh re-fetches the page
    // (@anycable/web's own way).
    watch(createCable({ protocol, tokenRefresher: fetchTokenFromHTML(), logLevel: 'error', reconnectStrategy: () => 100 }));
  },
  async turbo(cableUrl, signedStreamName) {
    // A Rails page: the cable URL in a meta tag, a target element and <turbo-cable-stream-source>.
    const meta = document.createElement('meta');
    meta.name = 'action-cable-url';
    meta.content = cableUrl;
    document.head.append(meta);
    await import('@hotwired/turbo-rails');
    document.body.insertAdjacentHTML('beforeend', '<div id="messages"></div>');
    const source = document.createElement('turbo-cable-stream-source');
    source.setAttribute('channel', 'Turbo::StreamsChannel');
    source.setAttribute('signed-stream-name', signedStreamName);
    document.body.append(source);
  },
  turboState() {
    const source = document.querySelector('turbo-cable-stream-source');
    return { connected: source.hasAttribute('connected'), messages: document.getElementById('messages').innerHTML };
  },
  streamFrom(name) { return follow(name, cable.streamFrom(name)); },
  streamFromSigned(name, signed) { return follow(name, cable.streamFromSigned(signed)); },
  async join(name, id, info) { await channels[name].presence.join(id, info); record(name, 'joined'); },
  async leave(name) { await channels[name].presence.leave(); record(name, 'left'); },
  // A copy: the client keeps updating the object info() returned.
  async presenceInfo(name) { record(name, 'info', JSON.parse(JSON.stringify(await channels[name].presence.info()))); },
};
window.cablecatReady = true;
`;

type PageEvent = { who: string; event: string; data?: unknown };

/** Serves the test page and the client packages (only .js files inside those packages) on 127.0.0.1. */
class PageServer {
  private server: Server | null = null;
  private readonly dirs = packageDirs();
  origin = '';
  /** The <meta> values of /?meta=1: the cable URL, the first token, the token a refresh gets. */
  meta = { url: '', token: '', refreshedToken: '', historyTimestamp: '' };
  refreshes = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch(() => res.writeHead(500).end());
    });
    await new Promise<void>((done) => this.server!.listen(0, '127.0.0.1', done));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    if (url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(this.page(url.searchParams.has('meta'), req));
      return;
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const match = /^\/pkg\/((?:@[^/]+\/)?[^/@]+)\/(.+)$/.exec(url.pathname);
    const dir = match ? this.dirs.get(match[1] ?? '') : undefined;
    // Relative imports without an extension (turbo-rails, Rails' sources) get one, as a bundler would.
    const path = match?.[2] ?? '';
    const file = dir ? resolve(dir, path.endsWith('.js') ? path : `${path}.js`) : '';
    if (!dir || !file.startsWith(dir + sep) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }).end(await readFile(file));
  }

  private page(withMeta: boolean, req: IncomingMessage): string {
    let meta = '';
    if (withMeta) {
      const refresh = req.headers['x-anycable-operation'] === 'token-refresh';
      if (refresh) this.refreshes++;
      meta = `<meta name="cable-url" content="${this.meta.url}"><meta name="cable-token" content="${refresh ? this.meta.refreshedToken : this.meta.token}">`;
      if (this.meta.historyTimestamp) meta += `<meta name="cable-history-timestamp" content="${this.meta.historyTimestamp}">`;
    }
    return `<!doctype html><html><head><meta charset="utf-8"><title>cablecat clients</title>${meta}` +
      `<script type="importmap">${JSON.stringify({ imports: IMPORTS })}</script>` +
      `<script type="module">${PAGE_SCRIPT}</script></head><body></body></html>`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((done) => this.server?.close(done));
  }
}

/** Calls a function of the page's `cablecat` object (awaiting its promise, if any). */
async function call(page: Page, method: string, ...args: unknown[]): Promise<void> {
  await page.evaluate(async ([name, params]) => {
    const api = (globalThis as unknown as { cablecat: Record<string, (...a: unknown[]) => unknown> }).cablecat;
    await api[name as string]?.(...(params as unknown[]));
  }, [method, args] as const);
}

async function pageEvents(page: Page): Promise<PageEvent[]> {
  return page.evaluate(() => (globalThis as unknown as { cablecat: { events(): PageEvent[] } }).cablecat.events());
}

/** Polls the page's events until `check` holds (or fails the test, showing what the page saw). */
async function until(page: Page, check: (events: PageEvent[]) => boolean, what: string, timeoutMs = 10_000): Promise<PageEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = await pageEvents(page);
    if (check(events)) return events;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; the page saw ${JSON.stringify(events)}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

/** Waits for /health to say 200: the node's broker connection is up. */
async function brokerReady(node: TestServer): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await httpRequest(`${node.http}/health`)).status !== 200) {
    if (Date.now() > deadline) assert.fail(`${node.http} never became healthy`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const count = (events: PageEvent[], who: string, event: string): number => events.filter((e) => e.who === who && e.event === event).length;

describe('browser clients in Chromium: @rails/actioncable and @anycable/web', () => {
  let browser: Browser;
  const pages = new PageServer();
  let pageErrors: string[] = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: npm test installs it (scripts/ensure-chromium.js) when run as root with apt-get; otherwise run \`apt-get install -y chromium\` or set CABLECAT_CHROMIUM`);
    await pages.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    await pages.stop();
  });

  /** A fresh page with the clients loaded; uncaught errors and console errors are collected. */
  async function openPage(query = ''): Promise<Page> {
    const page = await browser.newPage();
    pageErrors = [];
    page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => { if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()}`); });
    await page.goto(`${pages.origin}/${query}`);
    await page.waitForFunction(() => (globalThis as unknown as { cablecatReady?: boolean }).cablecatReady === true);
    return page;
  }

  test('@rails/actioncable: JWT in ?jid=, an RPC channel gets an HTTP broadcast and an action reply; a rejected subscription calls rejected()', async () => {
    await withRpcApp([], async (server, app) => {
      const page = await openPage();
      try {
        const stream = `ac_${suffix()}`;
        await call(page, 'actionCable', `${server.url}?jid=${await userToken('ac-user', 300)}`, stream);
        await until(page, (e) => count(e, 'streams', 'connected') === 1, 'the confirmed subscription');
        assert.equal((await broadcast(server.http, { stream, data: JSON.stringify({ text: 'from http' }) }, BROADCAST_KEY)).status, 201);
        await until(page, (e) => count(e, 'streams', 'received') === 1, 'the broadcast');
        await call(page, 'perform', 'echo', { text: 'marco' });
        await until(page, (e) => count(e, 'streams', 'received') === 2, 'the action reply');
        await call(page, 'actionCableReject');
        const events = await until(page, (e) => count(e, 'reject', 'rejected') === 1, 'the rejection');
        assert.deepEqual(events, [
          { who: 'streams', event: 'connected', data: { reconnected: false } },
          { who: 'streams', event: 'received', data: { text: 'from http' } },
          { who: 'streams', event: 'received', data: { response: 'marco' } },
          { who: 'reject', event: 'rejected' },
        ]);
        // The JWT identified the connection (no Connect RPC); the channel's commands went to the app.
        assert.equal(app.callsOf('Connect').length, 0);
        const commands = app.callsOf('Command').map((c) => (c.request as { command: string; identifier: string }));
        assert.deepEqual(commands.map((c) => [c.command, (JSON.parse(c.identifier) as { channel: string }).channel]), [
          ['subscribe', 'StreamsChannel'], ['message', 'StreamsChannel'], ['subscribe', 'RejectChannel'],
        ]);
        assert.deepEqual(pageErrors, []);
      } finally {
        await page.close();
      }
    });
  });

  test('@rails/actioncable: a connection the RPC app refuses gets disconnected({ willAttemptReconnect: false })', async () => {
    await withRpcApp([], async (server, app) => {
      const page = await openPage();
      try {
        await call(page, 'actionCable', `${server.url}?test=reasons&reason=unauthorized`, `ac_${suffix()}`);
        const events = await until(page, (e) => count(e, 'streams', 'disconnected') === 1, 'the disconnect');
        assert.deepEqual(events, [{ who: 'streams', event: 'disconnected', data: { willAttemptReconnect: false } }]);
        assert.equal(app.callsOf('Connect').length, 1);
        assert.equal(app.callsOf('Command').length, 0);
        assert.deepEqual(pageErrors, []);
      } finally {
        await page.close();
      }
    });
  });

  test("@rails/actioncable: the page's cookie reaches the RPC app's Connect; --allowed_origins admits the page's origin and refuses others", async () => {
    await withRpcApp(['--allowed_origins', new URL(pages.origin).host], async (server, app) => {
      const page = await openPage();
      try {
        // Cookies are not port-bound: the page's cookie for 127.0.0.1 goes with the WebSocket to the cable port.
        await call(page, 'setCookie', 'username=john green');
        await call(page, 'actionCable', `${server.url}?test=cookies`, `ac_${suffix()}`);
        const events = await until(page, (e) => count(e, 'streams', 'connected') === 1, 'the subscription');
        assert.deepEqual(events, [{ who: 'streams', event: 'connected', data: { reconnected: false } }]);
        const connect = app.callsOf('Connect')[0]?.request as { env: { headers: Record<string, string> } } | undefined;
        assert.equal(connect?.env.headers.cookie, 'username=john green');
        assert.deepEqual(pageErrors, []);
      } finally {
        await page.close();
      }
    });
    await withRpcApp(['--allowed_origins', 'app.example.com'], async (server, app) => {
      const page = await openPage();
      try {
        await call(page, 'rawSocket', server.url);
        const events = await until(page, (e) => count(e, 'raw', 'close') === 1, 'the refused upgrade');
        assert.deepEqual(events, [{ who: 'raw', event: 'error' }, { who: 'raw', event: 'close', data: { code: 1006, wasClean: false } }]);
        assert.equal(app.calls.length, 0);
        assert.match(server.logs.text, /origin not allowed, upgrade refused/);
      } finally {
        await page.close();
      }
    });
  });

  test('Turbo (@hotwired/turbo-rails on @rails/actioncable): <turbo-cable-stream-source> subscribes with a signed stream name and a broadcast turbo-stream changes the page', async () => {
    await withRpcApp(['--turbo_streams'], async (server, app) => {
      const page = await openPage();
      try {
        const stream = `turbo_${suffix()}`;
        await call(page, 'turbo', server.url, signStreamName(TEST_SECRET, stream));
        const state = (): Promise<{ connected: boolean; messages: string }> =>
          page.evaluate(() => (globalThis as unknown as { cablecat: { turboState(): { connected: boolean; messages: string } } }).cablecat.turboState());
        await page.waitForFunction("document.querySelector('turbo-cable-stream-source')?.hasAttribute('connected') === true");
        const html = '<turbo-stream action="append" target="messages"><template><p class="message">Hello from cablecat</p></template></turbo-stream>';
        assert.equal((await broadcast(server.http, { stream, data: JSON.stringify(html) }, BROADCAST_KEY)).status, 201);
        await page.waitForFunction("document.getElementById('messages')?.innerHTML !== ''");
        assert.deepEqual(await state(), { connected: true, messages: '<p class="message">Hello from cablecat</p>' });
        // Turbo::StreamsChannel is served by cablecat itself: the RPC app is not asked.
        assert.equal(app.callsOf('Command').length, 0);
        assert.deepEqual(pageErrors, []);
      } finally {
        await page.close();
      }
    });
  });

  test('@anycable/web on actioncable-v1-json: streamFrom and streamFromSigned receive broadcasts', async () => {
    await withRpcApp(['--public_streams'], async (server) => {
      const page = await openPage();
      try {
        const open = `pub_${suffix()}`;
        const secret = `signed_${suffix()}`;
        await call(page, 'anyCable', server.url, await userToken('web-user', 300), 'actioncable-v1-json');
        await call(page, 'streamFrom', open);
        await call(page, 'streamFromSigned', secret, signStreamName(TEST_SECRET, secret));
        await broadcast(server.http, [
          { stream: open, data: JSON.stringify({ n: 1 }) },
          { stream: secret, data: JSON.stringify('only for the signed') },
          { stream: open, data: JSON.stringify({ n: 2 }) },
        ], BROADCAST_KEY);
        const events = await until(page, (e) => count(e, open, 'message') === 2 && count(e, secret, 'message') === 1, 'three messages');
        assert.deepEqual(events, [
          { who: 'cable', event: 'connect', data: { reconnect: false, restored: false } },
          { who: open, event: 'subscribed' },
          { who: secret, event: 'subscribed' },
          { who: open, event: 'message', data: { n: 1 } },
          { who: secret, event: 'message', data: 'only for the signed' },
          { who: open, event: 'message', data: { n: 2 } },
        ]);
        assert.deepEqual(pageErrors, []);
      } finally {
        await page.close();
      }
    });
  });

  test('@anycable/web: the token in the WebSocket sub-protocol (browsers cannot set headers); whisper on a signed stream reaches the other page, not the sender', async () => {
    // --enforce_jwt: a connection is only let in with its JWT, here read from the sub-protocol list.
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--enforce_jwt', '--streams_whisper']);
    const alice = await openPage();
    const bob = await browser.newPage();
    try {
      await bob.goto(`${pages.origin}/`);
      await bob.waitForFunction(() => (globalThis as unknown as { cablecatReady?: boolean }).cablecatReady === true);
      const room = `typing_${suffix()}`;
      const signed = signStreamName(TEST_SECRET, room);
      await call(alice, 'anyCable', server.url, await userToken('alice', 300), 'actioncable-v1-json', 'sub-protocol');
      await call(bob, 'anyCable', server.url, await userToken('bob', 300), 'actioncable-v1-json', 'sub-protocol');
      await call(alice, 'streamFromSigned', room, signed);
      await call(bob, 'streamFromSigned', room, signed);
      await call(alice, 'whisper', room, { typing: 'alice' });
      await until(bob, (e) => count(e, room, 'message') === 1, 'the whisper');
      // A broadcast after the whisper: once alice has it, she would have had her own whisper too.
      assert.equal((await broadcast(server.http, { stream: room, data: JSON.stringify('sent') }, BROADCAST_KEY)).status, 201);
      const bobSaw = await until(bob, (e) => count(e, room, 'message') === 2, 'the broadcast on bob\'s page');
      const aliceSaw = await until(alice, (e) => count(e, room, 'message') === 1, 'the broadcast on alice\'s page');
      const connected = [{ who: 'cable', event: 'connect', data: { reconnect: false, restored: false } }, { who: room, event: 'subscribed' }];
      assert.deepEqual(bobSaw, [...connected, { who: room, event: 'message', data: { typing: 'alice' } }, { who: room, event: 'message', data: 'sent' }]);
      assert.deepEqual(aliceSaw, [...connected, { who: room, event: 'message', data: 'sent' }]);
      assert.deepEqual(pageErrors, []);
    } finally {
      await bob.close();
      await alice.close();
      await server.stop();
    }
  });

  test('@anycable/web: an expired token is refreshed from the page (fetchTokenFromHTML) and the client reconnects', async () => {
    await withRpcApp(['--public_streams'], async (server) => {
      pages.meta = { url: server.url, token: await userToken('web-user', -5), refreshedToken: await userToken('web-user', 300), historyTimestamp: '' };
      pages.refreshes = 0;
      const page = await openPage('?meta=1');
      try {
        const stream = `pub_${suffix()}`;
        await call(page, 'anyCableFromMeta', 'actioncable-v1-json');
        await call(page, 'streamFrom', stream);
        await broadcast(server.http, { stream, data: JSON.stringify('after refresh') }, BROADCAST_KEY);
        const events = await until(page, (e) => count(e, stream, 'message') === 1, 'the message');
        assert.deepEqual(events, [
          { who: 'cable', event: 'close', data: 'token_expired' },
          { who: 'cable', event: 'connect', data: { reconnect: false, restored: false } },
          { who: stream, event: 'subscribed' },
          { who: stream, event: 'message', data: 'after refresh' },
        ]);
        assert.equal(pages.refreshes, 1);
        assert.deepEqual(pageErrors.filter((e) => e.startsWith('pageerror')), []);
      } finally {
        await page.close();
      }
    });
  });

  test('@anycable/web on actioncable-v1-ext-json with --broker memory: messages sent while the socket is down arrive after the reconnect, once each, in order, and the session is restored', async () => {
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', 'memory']);
    const proxy = new TcpProxy(server.port);
    const proxyPort = await proxy.start();
    const page = await openPage();
    try {
      const stream = `rel_${suffix()}`;
      const send = async (from: number, to: number): Promise<void> => {
        const batch = [];
        for (let n = from; n <= to; n++) batch.push({ stream, data: JSON.stringify({ n }) });
        assert.equal((await broadcast(server.http, batch, BROADCAST_KEY)).status, 201);
      };
      await call(page, 'anyCable', `ws://127.0.0.1:${proxyPort}/cable`, await userToken('ext-user', 300), 'actioncable-v1-ext-json');
      await call(page, 'streamFrom', stream);
      await send(1, 3);
      await until(page, (e) => count(e, stream, 'message') === 3, 'the first three messages');

      // Down: the connection is cut and reconnect attempts are refused while the broadcasts go out.
      proxy.refusing = true;
      proxy.cut();
      await until(page, (e) => count(e, 'cable', 'disconnect') === 1, 'the disconnect');
      await send(4, 8);
      proxy.refusing = false;
      await until(page, (e) => count(e, 'cable', 'connect') === 2 && count(e, stream, 'message') === 8, 'the reconnect and the missed messages');
      await send(9, 10);
      const events = await until(page, (e) => count(e, stream, 'message') === 10, 'all ten messages');

      const messages = events.filter((e) => e.who === stream && e.event === 'message').map((e) => e.data as { msg: { n: number }; meta: { stream: string; epoch: string; offset: number } });
      assert.deepEqual(messages.map((m) => m.msg.n), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.deepEqual(new Set(messages.map((m) => `${m.meta.stream} ${m.meta.epoch}`)).size, 1);
      assert.equal(messages[0]?.meta.stream, stream);
      const offsets = messages.map((m) => m.meta.offset);
      assert.deepEqual(offsets, offsets.map((_, i) => (offsets[0] ?? 0) + i), 'consecutive offsets');
      assert.deepEqual(events.filter((e) => e.who !== stream || e.event !== 'message'), [
        { who: 'cable', event: 'connect', data: { reconnect: false, restored: false } },
        { who: stream, event: 'subscribed' },
        { who: 'cable', event: 'disconnect', data: 'transport_closed' },
        { who: 'cable', event: 'connect', data: { reconnect: true, restored: true } },
      ]);
      // Refused reconnect attempts are logged by Chromium as console errors; nothing may be thrown.
      assert.deepEqual(pageErrors.filter((e) => e.startsWith('pageerror')), []);
    } finally {
      await page.close();
      await proxy.stop();
      await server.stop();
    }
  });

  test('@anycable/web ext-json with the page\'s history timestamp (meta cable-history-timestamp): messages broadcast after the page was rendered, before it subscribed, arrive first (not older ones), then live ones', async () => {
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', 'memory']);
    try {
      const stream = `hist_${suffix()}`;
      // Message 0 is older than the page: history is asked since the second the page was rendered, a later one
      // (the timestamp has whole seconds, so only the clock's next second can tell them apart).
      assert.equal((await broadcast(server.http, { stream, data: JSON.stringify({ n: 0 }) }, BROADCAST_KEY)).status, 201);
      const rendered = Math.floor(Date.now() / 1000) + 1;
      await new Promise((r) => setTimeout(r, rendered * 1000 - Date.now() + 5));
      // The page is rendered now; messages 1 and 2 go out before its client subscribes.
      pages.meta = { url: server.url, token: await userToken('hist-user', 300), refreshedToken: '', historyTimestamp: String(rendered) };
      const page = await openPage('?meta=1');
      try {
        assert.equal((await broadcast(server.http, [1, 2].map((n) => ({ stream, data: JSON.stringify({ n }) })), BROADCAST_KEY)).status, 201);
        await call(page, 'anyCableFromMeta', 'actioncable-v1-ext-json');
        await call(page, 'streamFrom', stream);
        await until(page, (e) => count(e, stream, 'message') === 2, 'the two earlier messages');
        assert.equal((await broadcast(server.http, { stream, data: JSON.stringify({ n: 3 }) }, BROADCAST_KEY)).status, 201);
        const events = await until(page, (e) => count(e, stream, 'message') === 3, 'the live message');
        const messages = events.filter((e) => e.who === stream && e.event === 'message').map((e) => (e.data as { msg: { n: number } }).msg.n);
        assert.deepEqual(messages, [1, 2, 3]);
        assert.deepEqual(events.filter((e) => e.event !== 'message'), [
          { who: 'cable', event: 'connect', data: { reconnect: false, restored: false } },
          { who: stream, event: 'subscribed' },
        ]);
        assert.deepEqual(pageErrors, []);
      } finally {
        await page.close();
      }
    } finally {
      await server.stop();
    }
  });

  // A client moving to another node of a shared broker. After a graceful restart (a server_restart disconnect)
  // @anycable/web drops its sid on purpose and resubscribes asking for history from its positions; after a
  // broken connection it comes back with ?sid= and the other node restores the session.
  const moves = [
    { kind: 'redis', how: 'restart', reason: 'server_restart', restored: false },
    { kind: 'nats', how: 'restart', reason: 'server_restart', restored: false },
    { kind: 'redis', how: 'cut', reason: 'transport_closed', restored: true },
    { kind: 'nats', how: 'cut', reason: 'transport_closed', restored: true },
  ] as const;
  for (const { kind, how, reason, restored } of moves) {
    const what = how === 'restart' ? 'a rolling restart (server_restart)' : 'a broken connection';
    test(`@anycable/web ext-json with --broker ${kind}: after ${what} the client goes on on another node (restored: ${restored}) and gets what it missed, once, in order`, async () => {
      const args = ['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', kind];
      const a = await startServer(args);
      const b = await startServer(args);
      const proxy = new TcpProxy(a.port);
      const proxyPort = await proxy.start();
      const page = await openPage();
      try {
        for (const node of [a, b]) await brokerReady(node);
        const stream = `roll_${suffix()}`;
        const send = async (node: TestServer, from: number, to: number): Promise<void> => {
          const batch = [];
          for (let n = from; n <= to; n++) batch.push({ stream, data: JSON.stringify({ n }) });
          assert.equal((await broadcast(node.http, batch, BROADCAST_KEY)).status, 201);
        };
        await call(page, 'anyCable', `ws://127.0.0.1:${proxyPort}/cable`, await userToken('roll-user', 300), 'actioncable-v1-ext-json');
        await call(page, 'streamFrom', stream);
        await send(a, 1, 3);
        await until(page, (e) => count(e, stream, 'message') === 3, 'the first three messages');

        // The client's next node is b; a either shuts down (its clients get server_restart) or loses the connection.
        proxy.refusing = true;
        proxy.targetPort = b.port;
        if (how === 'restart') await a.stop();
        else proxy.cut();
        await until(page, (e) => count(e, 'cable', 'disconnect') === 1, 'the disconnect');
        await send(b, 4, 6);
        proxy.refusing = false;
        await until(page, (e) => count(e, 'cable', 'connect') === 2 && count(e, stream, 'message') === 6, 'the reconnect and the missed messages');
        await send(b, 7, 7);
        const events = await until(page, (e) => count(e, stream, 'message') === 7, 'the live message');

        const messages = events.filter((e) => e.who === stream && e.event === 'message').map((e) => e.data as { msg: { n: number }; meta: { epoch: string; offset: number } });
        assert.deepEqual(messages.map((m) => m.msg.n), [1, 2, 3, 4, 5, 6, 7]);
        assert.equal(new Set(messages.map((m) => m.meta.epoch)).size, 1, 'one epoch across the nodes');
        const offsets = messages.map((m) => m.meta.offset);
        assert.deepEqual(offsets, offsets.map((_, i) => (offsets[0] ?? 0) + i), 'consecutive offsets');
        assert.deepEqual(events.filter((e) => e.who !== stream || e.event !== 'message'), [
          { who: 'cable', event: 'connect', data: { reconnect: false, restored: false } },
          { who: stream, event: 'subscribed' },
          { who: 'cable', event: 'disconnect', data: reason },
          { who: 'cable', event: 'connect', data: { reconnect: true, restored } },
        ]);
        assert.deepEqual(pageErrors.filter((e) => e.startsWith('pageerror')), []);
      } finally {
        await page.close();
        await proxy.stop();
        await a.stop();
        await b.stop();
      }
    });
  }

  test('@anycable/web presence (ext-json, --broker memory): join, info() lists both users, leave() and a closed tab reach the other page', async () => {
    const server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--broker', 'memory', '--presence_ttl', '1']);
    const alice = await openPage();
    const bob = await browser.newPage();
    try {
      await bob.goto(`${pages.origin}/`);
      await bob.waitForFunction(() => (globalThis as unknown as { cablecatReady?: boolean }).cablecatReady === true);
      const room = `room_${suffix()}`;
      const presence = (events: PageEvent[]): unknown[] => events.filter((e) => e.who === room && e.event === 'presence').map((e) => e.data);
      await call(alice, 'anyCable', server.url, await userToken('alice', 300), 'actioncable-v1-ext-json');
      await call(bob, 'anyCable', server.url, await userToken('bob', 300), 'actioncable-v1-ext-json');
      await call(alice, 'streamFrom', room);
      await call(bob, 'streamFrom', room);
      await call(alice, 'join', room, 'alice', { name: 'Alice' });
      await until(bob, (e) => presence(e).length === 1, "alice's join on bob's page");
      await call(bob, 'join', room, 'bob', { name: 'Bob' });
      await until(alice, (e) => presence(e).length === 2, "bob's join on alice's page");
      await call(bob, 'presenceInfo', room);
      await call(alice, 'leave', room);
      const bobSaw = await until(bob, (e) => presence(e).length === 4, "alice's leave on bob's page");
      // Bob closes his tab: he leaves once --presence_ttl (1 s) has passed without him coming back.
      await bob.close();
      const aliceSaw = await until(alice, (e) => presence(e).length === 4, "bob's leave after his tab closed");

      const join = (id: string, name: string): unknown => ({ type: 'join', id, info: { name } });
      assert.deepEqual(presence(bobSaw), [
        join('alice', 'Alice'), join('bob', 'Bob'),
        { type: 'info', total: 2, records: [{ id: 'alice', info: { name: 'Alice' } }, { id: 'bob', info: { name: 'Bob' } }] },
        { type: 'leave', id: 'alice' },
      ]);
      assert.deepEqual(bobSaw.filter((e) => e.event === 'info'), [{ who: room, event: 'info', data: { alice: { name: 'Alice' }, bob: { name: 'Bob' } } }]);
      assert.deepEqual(presence(aliceSaw), [join('alice', 'Alice'), join('bob', 'Bob'), { type: 'leave', id: 'alice' }, { type: 'leave', id: 'bob' }]);
      assert.deepEqual(aliceSaw.filter((e) => e.event !== 'presence'), [
        { who: 'cable', event: 'connect', data: { reconnect: false, restored: false } },
        { who: room, event: 'subscribed' }, { who: room, event: 'joined' }, { who: room, event: 'left' },
      ]);
      assert.deepEqual(pageErrors, []);
    } finally {
      if (!bob.isClosed()) await bob.close();
      await alice.close();
      await server.stop();
    }
  });
});
