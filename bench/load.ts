// The load client: one process, the same for every server. Bounded counts and time; prints one JSON line.
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { RawWs } from './raw-ws.js';

export interface LoadArgs {
  mode: 'connect' | 'fanout' | 'idle' | 'replay';
  port: number;
  /** Path and query of the WebSocket endpoint, e.g. /cable?jid=… */
  path: string;
  http: string;
  count: number;
  concurrency: number;
  broadcasts: number;
  /** Pause between broadcasts, ms (0: each POST right after the previous answer). */
  interval: number;
  /** When set, broadcasts are PUBLISHed on this Redis channel instead of POSTed. */
  redisChannel?: string;
  /** Clients that parse and time every frame; the others only count frames. */
  sample: number;
  stream: string;
  /** replay: messages stored before the clients come back. */
  history?: number;
  /**
   * fanout: false when another load process sends the broadcasts (two load processes share one run); this one
   * then learns each broadcast's send time from the `t` its sampled clients parse.
   */
  send?: boolean;
  /** connect, fanout: also write every time (connect) or latency (fanout), ms, as raw Float64 to this file. */
  rawOut?: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as LoadArgs;
const identifier = JSON.stringify({ channel: '$pubsub', stream_name: args.stream });
const subscribeFrame = JSON.stringify({ command: 'subscribe', identifier });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Wall-clock ms with sub-ms resolution: comparable between the load processes of one run. */
const now = (): number => performance.timeOrigin + performance.now();
const PAD = 200;
/**
 * A broadcast's data: its number, its send time and padding; the padding shrinks by what `t` takes, so the
 * frame is as long as the ~230-byte frame of earlier runs ({"i":…,"pad":"x…"} with 200 x).
 */
function broadcastData(i: number, t: number): string {
  const bare = JSON.stringify({ i, t: Number(t.toFixed(3)), pad: '' });
  return JSON.stringify({ i, t: Number(t.toFixed(3)), pad: 'x'.repeat(Math.max(0, PAD + JSON.stringify({ i, pad: '' }).length - bare.length)) });
}
function writeRaw(values: ArrayLike<number>): void {
  if (args.rawOut) writeFileSync(args.rawOut, new Uint8Array(Float64Array.from(values).buffer));
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Opens one connection and waits for welcome, then (if asked) for the subscribe confirmation. */
async function open(subscribe: boolean): Promise<{ ws: RawWs; ms: number }> {
  const started = performance.now();
  let ws: RawWs | null = null;
  let done: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => { done = resolve; });
  let welcomed = false;
  ws = await RawWs.open(args.port, args.path, (payload) => {
    const text = payload.toString();
    if (text.includes('"welcome"')) {
      welcomed = true;
      if (!subscribe) done();
      else if (ws) ws.send(subscribeFrame);
    } else if (text.includes('confirm_subscription')) {
      done();
    }
  });
  // The welcome may have come with the 101, before `ws` was assigned.
  if (welcomed && subscribe) ws.send(subscribeFrame);
  const opened = ws;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    ready,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('handshake timeout')), 20_000);
      opened.socket.once('close', () => reject(new Error('closed during handshake')));
    }),
  ]).finally(() => clearTimeout(timer));
  opened.socket.removeAllListeners('close');
  opened.onFrame = () => undefined;
  return { ws: opened, ms: performance.now() - started };
}

async function openMany(n: number, subscribe: boolean): Promise<{ sockets: RawWs[]; times: number[]; failed: number; started: number; ended: number }> {
  const sockets: RawWs[] = [];
  const times: number[] = [];
  let failed = 0;
  let next = 0;
  const started = now();
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      try {
        const { ws, ms } = await open(subscribe);
        sockets.push(ws);
        times.push(ms);
        if (sockets.length % 2000 === 0) process.stderr.write(`  … ${sockets.length}/${n} connected\n`);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(args.concurrency, n) }, worker));
  return { sockets, times, failed, started, ended: now() };
}

function post(body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${args.http}/_broadcast`, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * N clients come back at once (100 connecting at a time) and subscribe with `history.since`; each gets
 * the stored messages, then confirm_history. Time until every client caught up, and per client.
 */
async function replay(): Promise<void> {
  const stored = args.history ?? 100;
  for (let i = 0; i < stored; i++) await post(JSON.stringify({ stream: args.stream, data: JSON.stringify({ i, pad: 'x'.repeat(200) }) }));
  const subscribe = JSON.stringify({ command: 'subscribe', identifier, history: { since: Math.floor(Date.now() / 1000) - 60 } });
  const times: number[] = [];
  let short = 0;
  let failed = 0;
  let next = 0;
  const started = performance.now();
  const catchUp = async (): Promise<void> => {
    const t0 = performance.now();
    let got = 0;
    let done: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => { done = resolve; });
    const ws = await RawWs.open(args.port, args.path, (payload) => {
      if (payload[2] === 0x69) got++; // {"identifier"…: a history message
      else if (payload.includes('confirm_history') || payload.includes('reject_history')) done();
    });
    // Commands queue behind authentication: no need to wait for the welcome.
    ws.send(subscribe);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([finished, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('no confirm_history')), 30_000); })]).finally(() => clearTimeout(timer));
    if (got < stored) short++;
    times.push(performance.now() - t0);
    ws.destroy();
  };
  const worker = async (): Promise<void> => {
    while (next < args.count) {
      next++;
      await catchUp().catch(() => { failed++; });
    }
  };
  await Promise.all(Array.from({ length: Math.min(args.concurrency, args.count) }, worker));
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ caughtUp: times.length, failed, short, allCaughtUpS: seconds, p50: percentile(times, 50), p99: percentile(times, 99), deliveriesPerS: (times.length * stored) / seconds }));
}

async function main(): Promise<void> {
  if (args.mode === 'replay') return replay();
  if (args.mode === 'connect') {
    const { sockets, times, failed, started, ended } = await openMany(args.count, true);
    for (const ws of sockets) ws.destroy();
    writeRaw(times);
    // started/ended (wall clock, ms): two load processes' rates are merged over the span of both.
    console.log(JSON.stringify({ connected: sockets.length, failed, rate: sockets.length / ((ended - started) / 1000), p50: percentile(times, 50), p99: percentile(times, 99), started, ended }));
    return;
  }
  if (args.mode === 'idle') {
    // Idle subscribed connections: welcome, subscribe, confirm, then nothing (what memory is measured on).
    const { sockets, failed } = await openMany(args.count, true);
    console.log(JSON.stringify({ connected: sockets.length, failed }));
    await new Promise((r) => process.stdin.once('data', r));
    for (const ws of sockets) ws.destroy();
    process.exit(0); // stdin stays open otherwise
  }
  const { sockets, failed } = await openMany(args.count, true);
  // Every client times every delivery without parsing it: broadcasts go out one by one and arrive in
  // order per connection, so a client's k-th frame is broadcast k. A sample also parses each frame
  // and checks that it really is broadcast k (and, when another process sends, learns its send time `t`).
  // Arrival times are kept and turned into latencies at the end, when every send time is known.
  const sendTimes: number[] = [];
  const arrivals = new Float64Array(sockets.length * args.broadcasts);
  const which = new Uint32Array(sockets.length * args.broadcasts);
  let received = 0;
  let misordered = 0;
  let lastAt = 0;
  sockets.forEach((ws, i) => {
    let k = 0;
    ws.onFrame = (payload) => {
      if (payload[2] !== 0x69) return; // a ping ({"type"…), not {"identifier"…
      const at = now();
      if (received < arrivals.length) {
        arrivals[received] = at;
        which[received] = k;
      }
      received++;
      lastAt = at;
      if (i < args.sample) {
        const message = (JSON.parse(payload.toString()) as { message?: { i?: number; t?: number } }).message;
        if (message?.i !== k) misordered++;
        else if (sendTimes[k] === undefined && typeof message.t === 'number') sendTimes[k] = message.t;
      }
      k++;
    };
  });
  const expected = sockets.length * args.broadcasts;
  // Tell the orchestrator the subscriptions are in place (it reads the server's CPU time), wait for go.
  console.log(JSON.stringify({ phase: 'subscribed' }));
  await new Promise((r) => process.stdin.once('data', r));
  process.stdin.pause();
  const sending = args.send !== false;
  const redis = sending && args.redisChannel ? new Redis('redis://127.0.0.1:6379') : null;
  const goAt = now();
  if (sending) {
    for (let i = 0; i < args.broadcasts; i++) {
      const t = now();
      sendTimes[i] = t;
      const payload = JSON.stringify({ stream: args.stream, data: broadcastData(i, t) });
      if (redis && args.redisChannel) await redis.publish(args.redisChannel, payload);
      else await post(payload);
      if (args.interval > 0) await sleep(args.interval);
    }
    const deadline = now() + 30_000;
    while (received < expected && now() < deadline) await sleep(20);
  } else {
    // Another process sends: wait for everything, or for 30 s without a new frame.
    while (received < expected && now() - Math.max(lastAt, goAt) < 30_000) await sleep(20);
  }
  const started = sendTimes[0] ?? goAt;
  const seconds = ((lastAt || now()) - started) / 1000;
  for (const ws of sockets) ws.destroy();
  redis?.disconnect();
  const kept = Math.min(received, arrivals.length);
  const all = new Array<number>(kept);
  for (let j = 0; j < kept; j++) {
    const k = which[j] ?? 0;
    all[j] = (arrivals[j] ?? 0) - (sendTimes[k] ?? arrivals[j] ?? 0);
  }
  writeRaw(all);
  console.log(JSON.stringify({
    subscribers: sockets.length, failed, expected, received, lost: expected - received, misordered, deliveriesPerS: received / seconds,
    p50: percentile(all, 50), p95: percentile(all, 95), p99: percentile(all, 99), max: percentile(all, 100), started, ended: lastAt || now(),
  }));
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
