// SSE next to WebSocket: N subscribers of one stream on one cablecat (`--sse`), M broadcasts one after the
// other; per-delivery latency for every client, p50/p99/max, deliveries/s, lost. The server runs pinned to
// core 0, this load client should run on core 1:
//   npm run build && taskset -c 1 node dist/bench/sse-fanout.js [--size=5000] [--broadcasts=50]
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { RawWs } from './raw-ws.js';

const opt = (name: string, fallback: string): string =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const size = Number(opt('size', '5000'));
const broadcasts = Number(opt('broadcasts', '50'));
const port = Number(opt('port', '18480'));
const stream = 'bench_sse';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** A subscriber that only counts deliveries (a broadcast's data starts with {"i"). */
interface Counter { count: number; onDelivery: () => void; close(): void }

/** One SSE stream over raw TCP: counts `data: {"i"` occurrences, split-safe across packets. */
function openSse(): Promise<Counter> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1', () => {
      socket.write(`GET /events?stream=${stream} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    });
    const counter: Counter = { count: 0, onDelivery: () => undefined, close: () => socket.destroy() };
    const pattern = 'data: {"i"';
    let tail = '';
    let confirmed = false;
    socket.on('data', (chunk: Buffer) => {
      const text = tail + chunk.toString('latin1');
      if (!confirmed && text.includes('event: confirm_subscription')) { confirmed = true; resolve(counter); }
      for (let at = text.indexOf(pattern); at !== -1; at = text.indexOf(pattern, at + pattern.length)) { counter.count++; counter.onDelivery(); }
      tail = text.slice(-(pattern.length - 1));
    });
    socket.on('error', reject);
    setTimeout(() => reject(new Error('no confirmation')), 20_000).unref();
  });
}

async function openWs(): Promise<Counter> {
  const identifier = JSON.stringify({ channel: '$pubsub', stream_name: stream });
  let confirmed: () => void = () => undefined;
  const ready = new Promise<void>((r) => { confirmed = r; });
  const counter: Counter = { count: 0, onDelivery: () => undefined, close: () => undefined };
  const ws = await RawWs.open(port, '/cable', (payload) => {
    // {"identifier"…: a broadcast, unless it is the confirmation (the only other frame with an identifier here).
    if (payload[2] !== 0x69) return;
    if (payload.includes('confirm_subscription')) confirmed();
    else { counter.count++; counter.onDelivery(); }
  });
  ws.send(JSON.stringify({ command: 'subscribe', identifier }));
  await ready;
  counter.close = () => ws.destroy();
  return counter;
}

function post(body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(`http://127.0.0.1:${port}/_broadcast`, { method: 'POST' }, (res) => { res.resume(); res.on('end', resolve); });
    req.on('error', reject);
    req.end(body);
  });
}

async function run(transport: 'ws' | 'sse'): Promise<Record<string, unknown>> {
  const clients: Counter[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: 100 }, async () => {
    while (next < size) { next++; clients.push(await (transport === 'sse' ? openSse() : openWs())); }
  }));
  const sendTimes: number[] = [];
  const latencies = new Float64Array(size * broadcasts);
  let received = 0;
  let lastAt = 0;
  for (const c of clients) {
    c.onDelivery = () => {
      const now = performance.now();
      latencies[received++] = now - (sendTimes[c.count - 1] ?? now);
      lastAt = now;
    };
  }
  const started = performance.now();
  for (let i = 0; i < broadcasts; i++) {
    sendTimes.push(performance.now());
    await post(JSON.stringify({ stream, data: JSON.stringify({ i, pad: 'x'.repeat(200) }) }));
  }
  const deadline = performance.now() + 30_000;
  while (received < size * broadcasts && performance.now() < deadline) await sleep(20);
  for (const c of clients) c.close();
  const sorted = latencies.subarray(0, received).sort();
  return {
    transport, subscribers: clients.length, lost: size * broadcasts - received,
    deliveriesPerS: Math.round(received / (((lastAt || performance.now()) - started) / 1000)),
    p50: +percentile(sorted, 50).toFixed(1), p99: +percentile(sorted, 99).toFixed(1), max: +percentile(sorted, 100).toFixed(1),
  };
}

async function main(): Promise<void> {
  const server = spawn('taskset', ['-c', '0', process.execPath, 'dist/src/cli/main.js', '--port', String(port), '--http_broadcast_port', String(port),
    '--host', '127.0.0.1', '--public', '--norpc', '--sse', '--log_level', 'warn', '--ping_interval', '60'], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    for (let i = 0; i < 100; i++) {
      const up = await new Promise<boolean>((r) => { const s = connect(port, '127.0.0.1', () => { s.destroy(); r(true); }); s.on('error', () => r(false)); });
      if (up) break;
      await sleep(100);
    }
    const rows = [];
    for (const transport of ['ws', 'sse'] as const) {
      process.stderr.write(`${transport} · fanout · ${size}\n`);
      rows.push(await run(transport));
      await sleep(1000);
    }
    console.log('| transport | n | p50 ms | p99 ms | max ms | deliveries/s | lost |\n| --- | --- | --- | --- | --- | --- | --- |');
    for (const r of rows) console.log(`| ${String(r.transport)} | ${String(r.subscribers)} | ${String(r.p50)} | ${String(r.p99)} | ${String(r.max)} | ${String(r.deliveriesPerS)} | ${String(r.lost)} |`);
  } finally {
    server.kill('SIGTERM');
  }
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
