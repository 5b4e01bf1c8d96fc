// The load client: one process, the same for every server. Bounded counts and time; prints one JSON line.
import WebSocket from 'ws';
import { request } from 'node:http';

interface Args {
  mode: 'connect' | 'fanout' | 'idle';
  url: string;
  http: string;
  count: number;
  concurrency: number;
  broadcasts: number;
  sample: number;
  stream: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const identifier = JSON.stringify({ channel: '$pubsub', stream_name: args.stream });
const subscribeFrame = JSON.stringify({ command: 'subscribe', identifier });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function pct(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Opens one connection, waits for welcome then (if asked) the subscribe confirmation. */
function open(subscribe: boolean): Promise<{ ws: WebSocket; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(args.url, ['actioncable-v1-json'], { perMessageDeflate: false });
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('connect timeout')); }, 20_000);
    ws.on('error', (e) => { clearTimeout(timer); reject(e); });
    ws.on('message', function onMessage(data) {
      const text = data.toString();
      if (text.includes('"welcome"')) {
        if (!subscribe) { clearTimeout(timer); ws.off('message', onMessage); resolve({ ws, ms: performance.now() - started }); }
        else ws.send(subscribeFrame);
      } else if (text.includes('confirm_subscription')) {
        clearTimeout(timer);
        ws.off('message', onMessage);
        resolve({ ws, ms: performance.now() - started });
      }
    });
  });
}

async function openMany(n: number, subscribe: boolean): Promise<{ sockets: WebSocket[]; times: number[]; failed: number; seconds: number }> {
  const sockets: WebSocket[] = [];
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
      } catch {
        failed++;
      }
      if (sockets.length % 1000 === 0) process.stderr.write(`  … ${sockets.length}/${n} connected\n`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(args.concurrency, n) }, worker));
  return { sockets, times, failed, seconds: (performance.now() - started) / 1000 };
}

function post(body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${args.http}/_broadcast`, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
    req.on('error', reject);
    req.end(body);
  });
}

async function main(): Promise<void> {
  if (args.mode === 'connect') {
    const { sockets, times, failed, seconds } = await openMany(args.count, true);
    for (const ws of sockets) ws.terminate();
    console.log(JSON.stringify({ connected: sockets.length, failed, rate: sockets.length / seconds, p50: pct(times, 50), p99: pct(times, 99) }));
    return;
  }
  if (args.mode === 'idle') {
    const { sockets, failed } = await openMany(args.count, false);
    console.log(JSON.stringify({ connected: sockets.length, failed }));
    await new Promise((r) => process.stdin.once('data', r));
    for (const ws of sockets) ws.terminate();
    process.exit(0); // stdin stays open otherwise
  }
  const { sockets, failed } = await openMany(args.count, true);
  let received = 0;
  let lastAt = 0;
  const latencies: number[] = [];
  sockets.forEach((ws, i) => {
    if (i < args.sample) {
      // A sample parses every frame and times it; the rest only count (a Node client parsing
      // every frame saturates long before the server does).
      ws.on('message', (data) => {
        received++;
        lastAt = performance.now();
        const msg = JSON.parse(data.toString()) as { message?: { t?: number } };
        if (msg.message?.t !== undefined) latencies.push(performance.timeOrigin + performance.now() - msg.message.t);
      });
    } else {
      ws.on('message', () => { received++; lastAt = performance.now(); });
    }
  });
  const expected = sockets.length * args.broadcasts;
  const started = performance.now();
  for (let i = 0; i < args.broadcasts; i++) {
    await post(JSON.stringify({ stream: args.stream, data: JSON.stringify({ t: performance.timeOrigin + performance.now(), i, pad: 'x'.repeat(200) }) }));
    await sleep(10);
  }
  const deadline = performance.now() + 30_000;
  while (received < expected && performance.now() < deadline) await sleep(20);
  const seconds = ((lastAt || performance.now()) - started) / 1000;
  for (const ws of sockets) ws.terminate();
  console.log(JSON.stringify({ subscribers: sockets.length, failed, expected, received, lost: expected - received, deliveriesPerS: received / seconds, p50: pct(latencies, 50), p95: pct(latencies, 95), p99: pct(latencies, 99), max: pct(latencies, 100) }));
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
