import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { broadcast } from '../helpers/http.js';
import { signToken } from '../helpers/tokens.js';
import { deriveKey } from '../../src/auth/keys.js';

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');
const CHROMIUM = process.env.CABLECAT_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const suffix = (): string => Math.random().toString(36).slice(2, 10);

/** What the page records from its EventSource. */
interface PageLog {
  readonly opens: number;
  readonly confirms: number;
  readonly errors: number;
  readonly messages: Array<{ data: string; lastEventId: string }>;
  readonly disconnects: string[];
  readonly readyState: number;
}

// The page runs in the browser: plain JS, no imports. It opens one EventSource (with credentials: a
// cross-origin request that needs CORS) and logs what it sees for the test to poll.
const PAGE = `<!doctype html><meta charset="utf-8"><title>sse</title><script>
window.log = { opens: 0, confirms: 0, errors: 0, messages: [], disconnects: [], readyState: -1 };
window.connect = (url) => {
  const source = new EventSource(url, { withCredentials: true });
  window.source = source;
  source.onopen = () => { log.opens++; };
  source.onerror = () => { log.errors++; };
  source.onmessage = (e) => { log.messages.push({ data: e.data, lastEventId: e.lastEventId }); };
  source.addEventListener('confirm_subscription', () => { log.confirms++; });
  source.addEventListener('disconnect', (e) => { log.disconnects.push(e.data); });
};
</script>`;

async function pageLog(page: Page): Promise<PageLog> {
  return page.evaluate(() => {
    const w = globalThis as unknown as { log: Omit<PageLog, 'readyState'>; source?: { readyState: number } };
    return { ...w.log, readyState: w.source?.readyState ?? -1 };
  });
}

async function until(page: Page, check: (log: PageLog) => boolean, what: string, timeoutMs = 10_000): Promise<PageLog> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = await pageLog(page);
    if (check(log)) return log;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; page saw ${JSON.stringify(log)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('SSE in Chromium: a real EventSource, cross-origin, with automatic resume', () => {
  let browser: Browser;
  let pages: Server;
  let pageOrigin = '';
  let server: TestServer;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: npm test installs it (scripts/ensure-chromium.js) when run as root with apt-get; otherwise run \`apt-get install -y chromium\``);
    // The page comes from another origin (another port), so the EventSource goes through CORS.
    pages = createServer((_req, res) => { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end(PAGE); });
    await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
    pageOrigin = `127.0.0.1:${(pages.address() as AddressInfo).port}`;
    server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--sse', '--broker', 'memory', '--allowed_origins', pageOrigin]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await new Promise((r) => pages?.close(r));
  });

  test('messages arrive; after the server cuts the stream the browser reconnects with Last-Event-ID and misses nothing', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`http://${pageOrigin}/`);
      const name = `browser_${suffix()}`;
      const user = `u_${suffix()}`;
      const token = await signToken(TEST_SECRET, { ext: JSON.stringify({ user_id: user }) }, { expiresIn: 300 });
      await page.evaluate((url) => (globalThis as unknown as { connect(u: string): void }).connect(url), `${server.http}/events?stream=${name}&jid=${token}`);
      await until(page, (log) => log.confirms === 1, 'the subscription');
      await broadcast(server.http, [1, 2].map((n) => ({ stream: name, data: JSON.stringify({ n }) })), BROADCAST_KEY);
      const before = await until(page, (log) => log.messages.length === 2, 'two messages');
      const [, epoch] = (before.messages[0]?.lastEventId ?? '').split('/');
      assert.deepEqual(before.messages.map((m) => m.data), ['{"n":1}', '{"n":2}']);
      assert.match(before.messages[1]?.lastEventId ?? '', new RegExp(`^\\d+/${epoch}/${name}$`));

      await broadcast(server.http, { command: 'disconnect', payload: { identifier: JSON.stringify({ user_id: user }), reconnect: true } }, BROADCAST_KEY);
      await until(page, (log) => log.disconnects.length === 1, 'the disconnect event');
      await broadcast(server.http, [3, 4].map((n) => ({ stream: name, data: JSON.stringify({ n }) })), BROADCAST_KEY);
      // Chromium reconnects on its own (its default retry is a few seconds) sending Last-Event-ID.
      await until(page, (log) => log.confirms === 2, 'the automatic reconnection');
      await broadcast(server.http, { stream: name, data: '{"n":5}' }, BROADCAST_KEY);
      const after = await until(page, (log) => log.messages.length === 5, 'all five messages');
      assert.deepEqual(after.messages.map((m) => m.data), [1, 2, 3, 4, 5].map((n) => JSON.stringify({ n })));
      assert.equal(after.opens, 2);
    } finally {
      await page.close();
    }
  });

  test('a disconnect with reconnect:false stops the browser from coming back (retry of a year)', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`http://${pageOrigin}/`);
      const user = `u_${suffix()}`;
      const token = await signToken(TEST_SECRET, { ext: JSON.stringify({ user_id: user }) }, { expiresIn: 300 });
      await page.evaluate((url) => (globalThis as unknown as { connect(u: string): void }).connect(url), `${server.http}/events?stream=kick_${suffix()}&jid=${token}`);
      await until(page, (log) => log.confirms === 1, 'the subscription');
      const sseBefore = server.app.metrics.gauge('sse_clients_num');
      await broadcast(server.http, { command: 'disconnect', payload: { identifier: JSON.stringify({ user_id: user }), reconnect: false } }, BROADCAST_KEY);
      const log = await until(page, (l) => l.disconnects.length === 1 && l.errors === 1, 'the disconnect and the end of the stream');
      assert.equal(log.disconnects[0], '{"type":"disconnect","reason":"remote","reconnect":false}');
      assert.equal(log.readyState, 0, 'CONNECTING: waiting out the year-long retry');
      assert.equal(server.app.metrics.gauge('sse_clients_num'), sseBefore - 1);
    } finally {
      await page.close();
    }
  });

  test('a page from an origin not in --allowed_origins cannot open the stream', async () => {
    const page = await browser.newPage();
    try {
      // Same page, reached through another host name: another origin.
      await page.goto(`http://localhost:${pageOrigin.split(':')[1]}/`);
      const refusedBefore = server.logs.lines.filter((l) => l.includes('origin not allowed')).length;
      await page.evaluate((url) => (globalThis as unknown as { connect(u: string): void }).connect(url), `${server.http}/events?stream=x_${suffix()}`);
      await until(page, (log) => log.errors >= 1, 'the error event');
      const log = await pageLog(page);
      assert.equal(log.confirms, 0);
      assert.equal(log.readyState, 2, 'CLOSED: a failed CORS check is fatal for EventSource');
      assert.ok(server.logs.lines.filter((l) => l.includes('origin not allowed')).length > refusedBefore);
    } finally {
      await page.close();
    }
  });
});
