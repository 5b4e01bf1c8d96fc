/**
 * Seeded, bounded fuzzing of everything a stranger can send: client frames, JWTs, sub-protocol lists,
 * HTTP broadcast and token requests (on the uWS main port and on the node:http API port). Each input's
 * answer is checked against the documented behaviour (README "Answers to bad input"), a sentinel
 * subscriber must get every broadcast made meanwhile, and the heap must come back near its baseline.
 * FUZZ_SEED=<n> replays a run; the counts are printed for quoting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { randomBytes } from 'node:crypto';
import { startServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { RawClient } from '../helpers/ws-client.js';
import { httpRequest, sleep, type HttpAnswer } from '../helpers/http.js';
import { signToken } from '../helpers/tokens.js';
import { deriveKey } from '../../src/auth/keys.js';
import { hashPassword } from '../../src/auth/users.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261130);
const MAX_MESSAGE = 8192;
const MAX_BROADCAST_BODY = 32 * 1024;
const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');
const API_KEY = deriveKey(TEST_SECRET, 'api-cable');

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  text(max: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-_.:/"\\{}[],$ é€😀\u0000\n'): string {
    const chars = [...alphabet];
    return Array.from({ length: this.int(max + 1) }, () => this.pick(chars)).join('');
  }
}

/** JSON text nested `depth` levels deep (built as text: JSON.stringify would recurse). */
function deepJson(depth: number, r: Rng): string {
  return r.chance(0.5) ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** A value of a random JSON type, often the wrong one for the field it lands in. */
function wrongValue(r: Rng): unknown {
  return r.pick<() => unknown>([
    () => 0, () => -1, () => 1e308, () => -1e308, () => 2 ** 64, () => Number.MAX_SAFE_INTEGER + 2, () => 0.5,
    () => true, () => false, () => null, () => [], () => ({}), () => [1, 'a', null], () => ({ a: { b: { c: [] } } }),
    () => '', () => ' ', () => r.text(40), () => 'x'.repeat(r.int(3000)), () => JSON.parse(deepJson(50 + r.int(400), r)) as unknown,
  ])();
}

/** Counts of answers by kind, printed at the end. */
class Tally {
  readonly counts = new Map<string, number>();
  inputs = 0;
  add(kind: string): void {
    this.inputs++;
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }
  toString(): string {
    return [...this.counts].sort().map(([k, n]) => `${k}=${n}`).join(' ');
  }
}

// ---- client frames ----------------------------------------------------------------------------

type FrameAnswer =
  | { readonly kind: 'silent'; readonly dropped: boolean } // nothing sent back, connection open; dropped ones are counted in failed_client_msg_total
  | { readonly kind: 'pong' }
  | { readonly kind: 'confirm' | 'reject'; readonly identifier: string }
  | { readonly kind: 'lenient' } // history/presence commands: only their own frame types, connection open
  | { readonly kind: 'close'; readonly code: number };

const CHANNEL_COMMANDS = ['subscribe', 'unsubscribe', 'message', 'whisper', 'history', 'presence', 'join', 'leave'];
const LENIENT_COMMANDS = new Set(['history', 'presence', 'join', 'leave']);
const LENIENT_TYPES = new Set(['reject_history', 'confirm_history', 'presence', 'reject_presence', 'confirm_presence', 'info']);

const DROPPED: FrameAnswer = { kind: 'silent', dropped: true };

/** The documented answer to a text frame, given the connection's confirmed subscriptions. */
function expectedFrameAnswer(text: string, subscribed: Set<string>): FrameAnswer {
  if (Buffer.byteLength(text) > MAX_MESSAGE) return { kind: 'close', code: 1009 };
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return DROPPED;
  }
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) return DROPPED;
  const { command, identifier, data } = frame as Record<string, unknown>;
  if (command === 'ping') return { kind: 'pong' };
  if (command === 'pong') return { kind: 'silent', dropped: false };
  if (!CHANNEL_COMMANDS.includes(command as string)) return DROPPED;
  if (typeof identifier !== 'string' || identifier === '') return DROPPED;
  if (command === 'message' && typeof data !== 'string') return DROPPED;
  if (LENIENT_COMMANDS.has(command as string)) return { kind: 'lenient' };
  const known = subscribed.has(identifier);
  if (command !== 'subscribe') {
    if (known && command === 'unsubscribe') subscribed.delete(identifier);
    return known ? { kind: 'silent', dropped: false } : DROPPED; // stream channels answer nothing; unknown subscription: dropped
  }
  if (known) return DROPPED; // subscribe twice
  let parsed: unknown;
  try {
    parsed = JSON.parse(identifier);
  } catch {
    return { kind: 'reject', identifier };
  }
  const channel = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  if (channel.channel === '$pubsub' && typeof channel.stream_name === 'string') {
    subscribed.add(identifier);
    return { kind: 'confirm', identifier };
  }
  return { kind: 'reject', identifier }; // bad $pubsub identifier, or an app channel without RPC
}

/** A valid frame of a random command, then 0-3 mutations; streams are private to the connection. */
function clientFrame(r: Rng, conn: number, subscribed: ReadonlySet<string>): string {
  const stream = `fz-${conn}-${r.int(4)}`;
  const pubsub = (): string => JSON.stringify(r.chance(0.8) ? { channel: '$pubsub', stream_name: stream } : { channel: r.pick(['$pubsub', 'ChatChannel', '']), stream_name: wrongValue(r), signed_stream_name: r.chance(0.3) ? r.text(30) : undefined });
  const identifier = subscribed.size > 0 && r.chance(0.4) ? r.pick([...subscribed]) : r.chance(0.7) ? pubsub() : r.pick(['', 'x', '{', '[1]', '{"channel":"Chat"}', r.text(60)]);
  const frame: Record<string, unknown> = { command: r.pick([...CHANNEL_COMMANDS, 'ping', 'pong', 'subscribe', 'subscribe']), identifier };
  if (frame.command === 'message') frame.data = JSON.stringify({ action: r.text(10) });
  if (frame.command === 'whisper') frame.data = { event: r.text(10) };
  const mutations = r.int(4);
  for (let i = 0; i < mutations; i++) {
    const field = r.pick(['command', 'identifier', 'data', r.text(8)]);
    if (r.chance(0.3)) delete frame[field];
    else frame[field] = wrongValue(r);
  }
  let text = JSON.stringify(frame);
  if (r.chance(0.1)) text = text.slice(0, r.int(text.length)); // truncated
  if (r.chance(0.05)) text = `${text.slice(0, -1)},"command":${JSON.stringify(wrongValue(r))}}`; // a duplicate key wins
  if (r.chance(0.03)) text = deepJson(1000 + r.int(2000), r);
  if (r.chance(0.03)) text = r.pick(['1e999', '-0', '123456789012345678901234567890', 'null', '"str"', 'true', '[]', '']);
  if (r.chance(0.02)) text = `{"command":"message","identifier":"x","data":"${'y'.repeat(MAX_MESSAGE)}"}`; // too big
  return text;
}

/** One fuzz connection: sends an input, then a ping, and reads what came back before the pong. */
class FuzzConnection {
  readonly subscribed = new Set<string>();
  private constructor(readonly client: RawClient) {}

  static async open(url: string): Promise<FuzzConnection> {
    const client = await RawClient.connect(url);
    const welcome = JSON.parse(await client.nextText()) as { type: string };
    assert.equal(welcome.type, 'welcome');
    return new FuzzConnection(client);
  }

  get open(): boolean {
    return this.client.ws.readyState === this.client.ws.OPEN;
  }

  /** Frames the input caused, or the close code when it closed the connection. */
  async answer(send: () => void, expected: FrameAnswer['kind'] | 'silent'): Promise<{ frames: string[] } | { closed: number }> {
    send();
    if (expected === 'close') return { closed: (await this.client.closed).code };
    this.client.ws.send('{"command":"ping"}');
    // Frames are answered in order: everything before our ping's pong is the input's answer.
    let pongsLeft = expected === 'pong' ? 2 : 1;
    const frames: string[] = [];
    for (;;) {
      const frame = await this.client.nextText(5000);
      if (frame === '{"type":"pong"}' && --pongsLeft === 0) return { frames };
      frames.push(frame);
    }
  }
}

function checkFrames(answer: FrameAnswer, got: { frames: string[] } | { closed: number }, input: string): string {
  const where = `input ${JSON.stringify(input.slice(0, 200))}`;
  if (answer.kind === 'close') {
    assert.deepEqual(got, { closed: answer.code }, where);
    return `close_${answer.code}`;
  }
  assert.ok('frames' in got, `${where}: connection closed`);
  const frames = got.frames;
  switch (answer.kind) {
    case 'silent':
      assert.deepEqual(frames, [], where);
      return answer.dropped ? 'dropped' : 'no_reply';
    case 'pong':
      assert.deepEqual(frames, ['{"type":"pong"}'], where);
      return 'pong';
    case 'confirm':
    case 'reject':
      assert.deepEqual(frames.map((f) => JSON.parse(f) as unknown), [{ identifier: answer.identifier, type: `${answer.kind}_subscription` }], where);
      return answer.kind;
    case 'lenient':
      for (const f of frames) assert.ok(LENIENT_TYPES.has((JSON.parse(f) as { type: string }).type), `${where}: unexpected ${f}`);
      return 'history_presence';
  }
}

// ---- HTTP -------------------------------------------------------------------------------------

function expectedBroadcastStatus(auth: boolean, body: Buffer): number {
  if (!auth) return 401;
  if (body.length > MAX_BROADCAST_BODY) return 413;
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return 422;
  }
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) return 422;
  for (const item of list) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return 422;
    const { command, payload, stream, data, meta } = item as Record<string, unknown>;
    if (command !== undefined) {
      if (command !== 'disconnect' || typeof payload !== 'object' || payload === null) return 422;
      const { identifier, reconnect } = payload as Record<string, unknown>;
      if (typeof identifier !== 'string' || identifier === '' || (reconnect !== undefined && typeof reconnect !== 'boolean')) return 422;
      continue;
    }
    if (typeof stream !== 'string' || stream === '' || data === undefined) return 422;
    if (meta !== undefined && meta !== null && (typeof meta !== 'object' || Array.isArray(meta))) return 422;
  }
  return 201;
}

function broadcastBody(r: Rng): Buffer {
  const one = (): Record<string, unknown> => {
    const item: Record<string, unknown> = r.chance(0.8)
      ? { stream: `fb-${r.text(12)}x`, data: r.chance(0.5) ? JSON.stringify({ t: r.text(20) }) : { t: r.text(20) } }
      : { command: 'disconnect', payload: { identifier: `{"nobody":"${r.int(1e9)}"}`, reconnect: r.chance(0.5) } };
    const mutations = r.int(3);
    for (let i = 0; i < mutations; i++) {
      const field = r.pick(['stream', 'data', 'meta', 'command', 'payload', r.text(6)]);
      if (r.chance(0.3)) delete item[field];
      else item[field] = wrongValue(r);
    }
    return item;
  };
  let text = JSON.stringify(r.chance(0.2) ? Array.from({ length: r.int(4) }, one) : one());
  if (r.chance(0.1)) text = text.slice(0, r.int(text.length));
  if (r.chance(0.03)) text = deepJson(500 + r.int(3000), r);
  if (r.chance(0.03)) return Buffer.concat([Buffer.from('{"stream":"fb-utf","data":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
  if (r.chance(0.02)) return Buffer.alloc(MAX_BROADCAST_BODY + 1 + r.int(1000), 'a');
  return Buffer.from(text);
}

function authHeader(r: Rng, key: string): { header: Record<string, string>; valid: boolean } {
  if (r.chance(0.4)) return { header: { Authorization: `Bearer ${key}` }, valid: true };
  return r.pick<() => { header: Record<string, string>; valid: boolean }>([
    () => ({ header: { Authorization: `Bearer ${key}` }, valid: true }),
    () => ({ header: { Authorization: `bearer  ${key}` }, valid: true }),
    () => ({ header: { Authorization: `Bearer ${key}` }, valid: true }),
    () => ({ header: {}, valid: false }),
    () => ({ header: { Authorization: 'Bearer' }, valid: false }),
    () => ({ header: { Authorization: `Basic ${key}` }, valid: false }),
    () => ({ header: { Authorization: `Bearer ${key.slice(0, -1)}` }, valid: false }),
    () => ({ header: { Authorization: `Bearer ${r.text(80, 'abcdef0123456789')}` }, valid: false }),
  ])();
}

function junkHeaders(r: Rng): Record<string, string> {
  const headers: Record<string, string> = { 'Content-Type': r.pick(['application/json', 'text/plain', '', 'application/x-www-form-urlencoded', r.text(20, 'abc/;=')]) };
  for (let i = r.int(3); i > 0; i--) headers[`X-Fuzz-${r.text(6, 'abcdef')}`] = r.text(100, 'abcdefghij ;=,');
  return headers;
}

function expectedTokenStatus(keyOk: boolean, body: Buffer): number[] {
  if (body.length > 16 * 1024) return [413];
  let input: unknown;
  try {
    input = JSON.parse(body.toString('utf8'));
  } catch {
    return [422];
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return [422];
  const { ttl, username, password, identifiers } = input as Record<string, unknown>;
  if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl <= 0 || ttl > 30 * 24 * 3600)) return [422];
  if (typeof username === 'string' && typeof password === 'string') return [401, 429, 503]; // wrong password, throttled, busy
  if (!keyOk) return [401];
  if (typeof identifiers !== 'object' || identifiers === null || Array.isArray(identifiers)) return [422];
  return [200];
}

function tokenBody(r: Rng): Buffer {
  const body: Record<string, unknown> = r.chance(0.6) ? { identifiers: { user_id: r.text(10) }, ttl: 1 + r.int(3600) } : { username: 'alice', password: r.text(12) };
  for (let i = r.int(3); i > 0; i--) {
    const field = r.pick(['identifiers', 'ttl', 'username', 'password', r.text(5)]);
    if (r.chance(0.3)) delete body[field];
    else body[field] = wrongValue(r);
  }
  let text = JSON.stringify(body);
  if (r.chance(0.1)) text = text.slice(0, r.int(text.length));
  if (r.chance(0.02)) return Buffer.alloc(16 * 1024 + 1 + r.int(100), 'b');
  return Buffer.from(text);
}

// ---- JWTs and sub-protocols -------------------------------------------------------------------

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** A token mutated so it can never verify (a changed signing input, or a changed signature byte), or a well-formed case. */
async function mutatedJwt(r: Rng): Promise<{ token: string; expect: 'welcome' | 'unauthorized' | 'token_expired' }> {
  const valid = await signToken(TEST_SECRET, { ext: '{"fuzz":"jwt"}' }, { expiresIn: 600 });
  const kind = r.int(10);
  if (kind === 0) return { token: valid, expect: 'welcome' };
  if (kind === 1) return { token: await signToken(TEST_SECRET, { ext: '{"fuzz":"jwt"}' }, { expiresIn: -10 }), expect: 'token_expired' };
  if (kind === 2) {
    let ext = wrongValue(r);
    while (typeof ext === 'string') ext = wrongValue(r); // any string is opaque identifiers: only non-strings are refused
    return { token: await signToken(TEST_SECRET, { ext }, { expiresIn: 600 }), expect: 'unauthorized' };
  }
  if (kind === 3) return { token: await signToken('another-secret-0123456789', { ext: '{"a":1}' }, { expiresIn: 600 }), expect: 'unauthorized' };
  if (kind === 4) return { token: `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"ext":"{}"}').toString('base64url')}.`, expect: 'unauthorized' };
  if (kind === 5) return { token: r.text(200, `${B64URL}.`) || 'x', expect: 'unauthorized' };
  if (kind === 6) return { token: `${valid}.${r.text(2000, B64URL)}${'a'.repeat(8200)}`.slice(0, 8193 + r.int(1000)), expect: 'unauthorized' }; // too long
  // One character changed anywhere but the signature's last (its low bits may be ignored by base64url).
  const at = r.int(valid.length - 1);
  const replacement = r.pick([...B64URL.replace(valid[at] ?? '', ''), '.']);
  return { token: `${valid.slice(0, at)}${replacement}${valid.slice(at + 1)}`, expect: 'unauthorized' };
}

/** A raw upgrade with an arbitrary Sec-WebSocket-Protocol list; resolves with the response head. */
function rawUpgrade(port: number, protocols: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1');
    let head = '';
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error('upgrade timed out')); });
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end !== -1) { socket.destroy(); resolve(head.slice(0, end)); }
    });
    socket.on('error', reject);
    socket.write(`GET /cable HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Protocol: ${protocols}\r\n\r\n`);
  });
}

function protocolList(r: Rng): { header: string; chosen: string } {
  const pool = ['actioncable-v1-json', 'actioncable-v1-ext-json', 'actioncable-v1-msgpack', 'actioncable-unsupported', `anycable-token.${r.text(40, B64URL)}`, 'graphql-ws', '', ' ', r.text(30, 'abcdefgh-.'), 'x'.repeat(r.int(500))];
  const entries = Array.from({ length: r.int(8) + 1 }, () => r.pick(pool));
  const chosen = entries.map((e) => e.trim()).find((e) => e === 'actioncable-v1-json' || e === 'actioncable-v1-ext-json') ?? '';
  return { header: entries.join(r.pick([',', ', ', ' ,'])), chosen };
}

// ---- the run ----------------------------------------------------------------------------------

function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

test(`fuzz (seed ${SEED}): every input gets its documented answer, nothing crashes, the sentinel hears every broadcast, memory returns`, async (t) => {
  const r = new Rng(SEED);
  const dir = mkdtempSync(join(tmpdir(), 'cablecat-fuzz-'));
  writeFileSync(join(dir, 'users'), `alice:${await hashPassword('wonderland')}\n`);
  const server: TestServer = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--users_file', join(dir, 'users'),
    '--max_message_size', String(MAX_MESSAGE), '--http_broadcast_max_body', String(MAX_BROADCAST_BODY)]);
  const frames = new Tally();
  const jwts = new Tally();
  const upgrades = new Tally();
  const http = new Tally();
  try {
    const token = await signToken(TEST_SECRET, { ext: '{"fuzz":"client"}' }, { expiresIn: 600 });
    const url = `${server.url}?jid=${token}`;
    // The sentinel: a well-behaved subscriber on a stream nobody fuzzes; it must get every broadcast, in order.
    const sentinelStream = `sentinel-${randomBytes(4).toString('hex')}`;
    const sentinelId = JSON.stringify({ channel: '$pubsub', stream_name: sentinelStream });
    const sentinel = await FuzzConnection.open(`${server.url}?jid=${await signToken(TEST_SECRET, { ext: '{"sentinel":1}' }, { expiresIn: 600 })}`);
    sentinel.client.ws.send(JSON.stringify({ command: 'subscribe', identifier: sentinelId }));
    assert.equal(JSON.parse(await sentinel.client.nextText()).type, 'confirm_subscription');
    let sent = 0;
    const beacon = async (): Promise<void> => {
      const answer = await httpRequest(`${sent % 2 === 0 ? server.http : server.api}/_broadcast`, {
        method: 'POST', headers: { Authorization: `Bearer ${BROADCAST_KEY}` }, body: JSON.stringify({ stream: sentinelStream, data: JSON.stringify({ n: sent }) }),
      });
      assert.equal(answer.status, 201);
      sent++;
    };
    const baseline = heapAfterGc();
    const failedBefore = server.app.metrics.counters.failed_client_msg_total;

    // 1a. Every command with each field missing or of every wrong type, in order (deterministic).
    {
      const c = await FuzzConnection.open(url);
      const wrongTypes: unknown[] = [undefined, 0, -1, 1e308, 2 ** 64, 0.5, true, false, null, [], {}, [1, 'a'], { a: { b: [] } }, '', 'x', JSON.parse(deepJson(300, r)) as unknown];
      const identifier = JSON.stringify({ channel: '$pubsub', stream_name: 'fz-sweep' });
      for (const command of [...CHANNEL_COMMANDS, 'ping', 'pong']) {
        for (const field of ['command', 'identifier', 'data']) {
          for (const value of wrongTypes) {
            const frame: Record<string, unknown> = { command, identifier, data: command === 'message' ? '{}' : { a: 1 } };
            if (value === undefined) delete frame[field];
            else frame[field] = value;
            const text = JSON.stringify(frame);
            const expected = expectedFrameAnswer(text, c.subscribed);
            frames.add(checkFrames(expected, await c.answer(() => c.client.ws.send(text), expected.kind), text));
          }
        }
      }
      await c.client.close();
    }

    // 1b. Random and mutated client frames on three connections at once; a closed one is replaced.
    await Promise.all([0, 1, 2].map(async (conn) => {
      const cr = new Rng(SEED + conn + 1);
      let c = await FuzzConnection.open(url);
      for (let i = 0; i < 400; i++) {
        if (!c.open) c = await FuzzConnection.open(url);
        const kind = cr.int(100);
        if (kind < 3) {
          const got = await c.answer(() => c.client.ws.send(randomBytes(cr.int(100) + 1), { binary: true }), 'silent');
          assert.deepEqual(got, { frames: [] }, 'binary frame');
          frames.add('dropped_binary');
        } else if (kind < 5) {
          // Invalid UTF-8 in a text frame: uWS fails the connection (RFC 6455 §8.1); the client sees 1006.
          const payload = Buffer.from([0x7b, 0xc3, 0x28, 0xff, 0x7d]);
          const header = Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]);
          const socket = (c.client.ws as unknown as { _socket: { write(b: Buffer): void } })._socket;
          const got = await c.answer(() => socket.write(Buffer.concat([header, payload])), 'close');
          assert.deepEqual(got, { closed: 1006 }, 'invalid UTF-8');
          frames.add('invalid_utf8_close_1006');
        } else {
          const text = clientFrame(cr, conn, c.subscribed);
          const expected = expectedFrameAnswer(text, c.subscribed);
          const got = await c.answer(() => c.client.ws.send(text), expected.kind);
          frames.add(checkFrames(expected, got, text));
        }
        if (conn === 0 && i % 40 === 0) await beacon();
      }
      await c.client.close();
    }));

    // 2. JWTs in the query, the X-JID header or an anycable-token.* sub-protocol entry.
    for (let i = 0; i < 120; i++) {
      const { token: jwt, expect } = await mutatedJwt(r);
      const place = r.pick(['query', 'header', 'protocol'] as const);
      const client = place === 'query' ? new RawClient(`${server.url}?jid=${encodeURIComponent(jwt)}`)
        : place === 'header' ? new RawClient(server.url, { headers: { 'X-JID': jwt } })
          : new RawClient(server.url, { protocols: ['actioncable-v1-json', `anycable-token.${jwt}`] });
      try {
        await client.opened;
      } catch (err) {
        // A character no header or sub-protocol may carry: the client itself refuses to send it.
        assert.ok(place !== 'query', `upgrade failed for a query token: ${String(err)}`);
        jwts.add('client_refused_to_send');
        continue;
      }
      const first = JSON.parse(await client.nextText()) as { type: string; reason?: string };
      if (expect === 'welcome') {
        assert.equal(first.type, 'welcome');
        await client.close();
      } else {
        assert.deepEqual(first, { type: 'disconnect', reason: expect, reconnect: false }, `${place} token ${jwt.slice(0, 80)}`);
        assert.equal((await client.closed).code, 1000);
      }
      jwts.add(expect);
      if (i % 30 === 0) await beacon();
    }

    // 3. Sub-protocol lists: 101, echoing the first Action Cable protocol offered (never a token), or none.
    for (let i = 0; i < 60; i++) {
      const { header, chosen } = protocolList(r);
      const head = await rawUpgrade(server.port, header);
      assert.match(head, /^HTTP\/1\.1 101 /, header);
      const echoed = /\r\nsec-websocket-protocol: ([^\r]*)/i.exec(head)?.[1] ?? '';
      assert.equal(echoed, chosen, header);
      upgrades.add(chosen === '' ? 'no_protocol_echoed' : `echo_${chosen}`);
    }

    // 4. HTTP broadcast and token requests on both listeners.
    for (let i = 0; i < 250; i++) {
      const base = r.chance(0.5) ? server.http : server.api;
      let answer: HttpAnswer;
      let allowed: number[];
      if (r.chance(0.6)) {
        const auth = authHeader(r, r.chance(0.5) ? BROADCAST_KEY : API_KEY);
        const body = broadcastBody(r);
        allowed = [expectedBroadcastStatus(auth.valid, body)];
        answer = await httpRequest(`${base}/_broadcast`, { method: 'POST', headers: { ...junkHeaders(r), ...auth.header }, body }).catch(tooLargeReset(allowed));
        http.add(`broadcast_${answer.status}`);
      } else {
        const auth = authHeader(r, API_KEY);
        const body = tokenBody(r);
        allowed = expectedTokenStatus(auth.valid, body);
        answer = await httpRequest(`${base}/auth/token`, { method: 'POST', headers: { ...junkHeaders(r), ...auth.header }, body }).catch(tooLargeReset(allowed));
        http.add(`token_${answer.status}`);
      }
      assert.ok(allowed.includes(answer.status), `got ${answer.status} (${answer.body.slice(0, 200)}), expected ${allowed.join('/')}`);
      if (answer.status !== 201 && answer.status !== 200) assert.equal(typeof (answer.json() as { error: unknown }).error, 'string');
      if (i % 50 === 0) await beacon();
    }

    // Every dropped frame and every oversize one was counted (history/presence commands may add more).
    const counted = [...frames.counts].filter(([k]) => k.startsWith('dropped') || k === 'close_1009').reduce((n, [, v]) => n + v, 0);
    assert.ok(server.app.metrics.counters.failed_client_msg_total - failedBefore >= counted, 'failed_client_msg_total counts dropped frames');

    // The sentinel heard every broadcast, in order, and nothing else.
    await beacon();
    const heard: number[] = [];
    while (heard.length < sent) heard.push((JSON.parse(await sentinel.client.nextText()) as { message: { n: number } }).message.n);
    assert.deepEqual(heard, Array.from({ length: sent }, (_, n) => n));
    assert.equal((await httpRequest(`${server.http}/health`)).status, 200);
    assert.equal(server.logs.records().filter((l) => Number(l.level) >= 50).length, 0, 'no error-level log line');

    // Memory: with the fuzz connections gone, the heap comes back near the baseline (generous bound).
    for (let i = 0; i < 100 && server.app.node.size > 1; i++) await sleep(20);
    assert.equal(server.app.node.size, 1, 'only the sentinel is left');
    server.logs.lines.length = 0; // the capture is the test's memory, not the server's
    const after = heapAfterGc();
    const growth = after - baseline;
    const summary = [
      `seed=${SEED}`,
      `client frames: inputs=${frames.inputs} ${frames.toString()}`,
      `jwts: inputs=${jwts.inputs} ${jwts.toString()}`,
      `sub-protocol lists: inputs=${upgrades.inputs} ${upgrades.toString()}`,
      `http: inputs=${http.inputs} ${http.toString()}`,
      `sentinel broadcasts=${sent} heard=${heard.length}`,
      `heap baseline=${(baseline / 2 ** 20).toFixed(1)} MiB after=${(after / 2 ** 20).toFixed(1)} MiB`,
    ];
    for (const line of summary) t.diagnostic(line);
    assert.ok(growth < 24 * 2 ** 20, `heap grew by ${(growth / 2 ** 20).toFixed(1)} MiB`);
    await sentinel.client.close();
  } finally {
    await server.stop();
  }
});

/**
 * A body over the limit may be answered (413) and the connection closed before the client finished
 * writing it: the client then sees a reset instead of the answer. Counted as the 413 it is.
 */
function tooLargeReset(allowed: readonly number[]): (err: unknown) => HttpAnswer {
  return (err) => {
    // Only a reset counts: a refused connection, a timeout or a hang is a failure whatever was allowed.
    const code = (err as { code?: unknown }).code;
    if (!allowed.includes(413) || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw err;
    return { status: 413, body: '{"error":"payload_too_large"}', headers: {}, json: () => ({ error: 'payload_too_large' }) };
  };
}
