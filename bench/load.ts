// The load client: one process, the same for every server. Bounded counts and time; prints one JSON line.
import { request } from 'node:http';
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
}

const args = JSON.parse(process.argv[2] ?? '{}') as LoadArgs;
const identifier = JSON.stringify({ channel: '$pubsub', stream_name: args.stream });
const subscribeFrame = JSON.stringify({ command: 'subscribe', identifier });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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

async function openMany(n: number, subscribe: boolean): Promise<{ sockets: RawWs[]; times: number[]; failed: number; seconds: number }> {
  const sockets: RawWs[] = [];
  const times: number[] = [];
  let failed = 0;
  let next = 0;
  const started = performance.now();
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
  return { sockets, times, failed, seconds: (performance.now() - started) / 1000 };
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
    const { sockets, times, failed, seconds } = await openMany(args.count, true);
    for (const ws of sockets) ws.destroy();
    console.log(JSON.stringify({ connected: sockets.length, failed, rate: sockets.length / seconds, p50: percentile(times, 50), p99: percentile(times, 99) }));
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
  // and checks that it really is broadcast k.
  const sendTimes: number[] = [];
  const latencies = new Float64Array(sockets.length * args.broadcasts);
  let received = 0;
  let misordered = 0;
  let lastAt = 0;
  sockets.forEach((ws, i) => {
    let k = 0;
    ws.onFrame = (payload) => {
      if (payload[2] !== 0x69) return; // a ping ({"type"…), not {"identifier"…
      const now = performance.now();
      latencies[received++] = now - (sendTimes[k] ?? now);
      lastAt = now;
      if (i < args.sample && (JSON.parse(payload.toString()) as { message?: { i?: number } }).message?.i !== k) misordered++;
      k++;
    };
  });
  const expected = sockets.length * args.broadcasts;
  // Tell the orchestrator the subscriptions are in place (it reads the server's CPU time), wait for go.
  console.log(JSON.stringify({ phase: 'subscribed' }));
  await new Promise((r) => process.stdin.once('data', r));
  process.stdin.pause();
  const redis = args.redisChannel ? new Redis('redis://127.0.0.1:6379') : null;
  const started = performance.now();
  for (let i = 0; i < args.broadcasts; i++) {
    sendTimes.push(performance.now());
    const payload = JSON.stringify({ stream: args.stream, data: JSON.stringify({ i, pad: 'x'.repeat(200) }) });
    if (redis && args.redisChannel) await redis.publish(args.redisChannel, payload);
    else await post(payload);
    if (args.interval > 0) await sleep(args.interval);
  }
  const deadline = performance.now() + 30_000;
  while (received < expected && performance.now() < deadline) await sleep(20);
  const seconds = ((lastAt || performance.now()) - started) / 1000;
  for (const ws of sockets) ws.destroy();
  redis?.disconnect();
  const all = Array.from(latencies.subarray(0, Math.min(received, latencies.length)));
  console.log(JSON.stringify({
    subscribers: sockets.length, failed, expected, received, lost: expected - received, misordered, deliveriesPerS: received / seconds,
    p50: percentile(all, 50), p95: percentile(all, 95), p99: percentile(all, 99), max: percentile(all, 100),
  }));
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
