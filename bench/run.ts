// npm run bench -- [--sizes=1000,5000,10000] [--scenarios=connect,fanout,memory,replay,forward] [--broadcasts=50] [--workers=1,2] [--warmup=10000] [--rounds=1]
// Each server is its own process (pinned to core 0 when taskset exists), the load client another (core 1).
// With --workers, cablecat with N worker threads and bare uWS also run on both cores, loaded by two client
// processes at once (they share the cores with the server).
// Numbers are reported next to the baselines of the same run, and as ratios to the bare uWS limit.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, readdirSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { createSecretKey } from 'node:crypto';
import { SignJWT } from 'jose';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const opt = (name: string, def: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const sizes = opt('sizes', '1000,5000').split(',').map(Number);
const scenarios = opt('scenarios', 'connect,fanout,memory,replay,forward').split(',');
const broadcasts = Number(opt('broadcasts', '50'));
const interval = Number(opt('interval', '0'));
const only = opt('servers', '').split(',').filter((s) => s !== '');
/**
 * --rounds=N runs every (size, server, scenario) N times, the servers interleaved within each round. On a
 * machine shared with other work, CPU per operation moves with the load of the moment (a slower loop batches
 * fewer events per wakeup); ratios are taken between the medians of the rounds.
 */
const rounds = Number(opt('rounds', '1'));
/** Connects per worker before the connect scenario measures (see there). */
const warmupConnects = Number(opt('warmup', '10000'));
/** --workers=1,2: also cablecat-jwt-w1, -w2 (`--workers N`) and bare-uws-2l, on both cores with two load clients. */
const workerCounts = opt('workers', '').split(',').filter((s) => s !== '').map(Number);
/** The forward scenario: many broadcasts to few subscribers, to read the main thread's cost per broadcast. */
const FORWARD_SUBSCRIBERS = 10;
const FORWARD_BROADCASTS = Number(opt('forward_broadcasts', '3000'));
const hasTaskset = spawnSync('sh', ['-c', 'command -v taskset'], { encoding: 'utf8' }).stdout.trim() !== '';
const SECRET = 'bench-secret-0123456789abcdef';
// Ports are options so two runs on one machine don't collide.
const RPC_PORT = Number(opt('rpc_port', '50061'));

/** `cores` is a taskset list: '0', '1' or '0,1' (taskset execs node: the child's pid is node's). */
function pinned(cores: string, args: string[]): [string, string[]] {
  return hasTaskset ? ['taskset', ['-c', cores, process.execPath, ...args]] : [process.execPath, args];
}

async function startProcess(core: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const [cmd, argv] = pinned(core, args);
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], cwd: root, env: { ...process.env, NODE_ENV: 'development' } });
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => { out += d.toString(); if (ready.test(out)) resolve(); };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${out}`)));
    timer = setTimeout(() => reject(new Error(`not ready: ${out}`)), 15_000);
  }).finally(() => clearTimeout(timer));
  return child;
}

interface ServerSpec {
  readonly name: string;
  readonly args: (port: number) => string[];
  readonly ready: RegExp;
  /** Connects with a JWT in the query (the RPC variant connects without one, so RPC Connect runs). */
  readonly jwt: boolean;
  readonly connectOnly?: boolean;
  readonly fanoutOnly?: boolean;
  /** Only run when named in --servers. */
  readonly optIn?: boolean;
  /** Broadcasts go through this Redis channel instead of HTTP. */
  readonly redisChannel?: string;
  /** Runs with a broker: also the history replay scenario. */
  readonly broker?: boolean;
  /**
   * The workers comparison: the server may use both cores (taskset 0,1) and the load is spread over two
   * client processes on the same two cores. `workers` is cablecat's --workers (absent for bare uWS).
   */
  readonly spread?: boolean;
  readonly workers?: number;
}

/** --before=<checkout>: also runs the cablecat built in another checkout (its dist/), for before/after in one run. */
const beforeRoot = opt('before', '');
const cablecatArgs = (port: number, extra: string[], from = root): string[] => [join(from, 'dist/src/cli/main.js'), '--port', String(port), '--host', '127.0.0.1',
  '--http_broadcast_port', String(port), '--secret', SECRET, '--public_streams', '--broadcast_key', 'none', '--log_level', 'info', '--log_format', 'json', '--ping_interval', '60', ...extra];
const SERVERS: readonly ServerSpec[] = [
  { name: 'bare-uws', args: (p) => [join(here, 'baselines/bare-uws.js'), String(p)], ready: /ready/, jwt: true },
  { name: 'ws', args: (p) => [join(here, 'baselines/ws-server.js'), String(p)], ready: /ready/, jwt: true },
  { name: 'cablecat-jwt', args: (p) => cablecatArgs(p, ['--norpc']), ready: /cablecat started/, jwt: true },
  { name: 'cablecat-redis', args: (p) => cablecatArgs(p, ['--norpc', '--broadcast_adapter', 'redis', '--redis_channel', `__cablecat_bench_${p}__`]), ready: /cablecat started/, jwt: true, fanoutOnly: true, redisChannel: '__cablecat_bench_PORT__' },
  // cablecat with V8's default young-generation growth (an operator's node flag turns the cap off): the
  // memory/CPU trade of src/runtime/young-generation.ts, measured in the same run.
  { name: 'cablecat-jwt-growing-young', args: (p) => ['--semi-space-growth-factor=2', ...cablecatArgs(p, ['--norpc'])], ready: /cablecat started/, jwt: true, optIn: true },
  ...(beforeRoot ? [{ name: 'cablecat-jwt-before', args: (p: number) => cablecatArgs(p, ['--norpc'], beforeRoot), ready: /cablecat started/, jwt: true }] : []),
  { name: 'cablecat-broker-memory', args: (p) => cablecatArgs(p, ['--norpc', '--broker', 'memory']), ready: /cablecat started/, jwt: true, fanoutOnly: true, broker: true },
  { name: 'cablecat-broker-redis', args: (p) => cablecatArgs(p, ['--norpc', '--broker', 'redis']), ready: /cablecat started/, jwt: true, fanoutOnly: true, broker: true },
  { name: 'cablecat-rpc', args: (p) => cablecatArgs(p, ['--rpc_host', `127.0.0.1:${RPC_PORT}`, '--disconnect_mode', 'never']), ready: /cablecat started/, jwt: false, connectOnly: true },
  ...(workerCounts.length > 0 ? [{ name: 'bare-uws-2l', args: (p: number) => [join(here, 'baselines/bare-uws.js'), String(p)], ready: /ready/, jwt: true, spread: true }] : []),
  ...workerCounts.map((n): ServerSpec => ({ name: `cablecat-jwt-w${n}`, args: (p) => cablecatArgs(p, ['--norpc', '--workers', String(n)]), ready: /cablecat started/, jwt: true, spread: true, workers: n })),
  ...(beforeRoot ? [{ name: 'cablecat-rpc-before', args: (p: number) => cablecatArgs(p, ['--rpc_host', `127.0.0.1:${RPC_PORT}`, '--disconnect_mode', 'never'], beforeRoot), ready: /cablecat started/, jwt: false, connectOnly: true }] : []),
];

interface Load {
  readonly child: ChildProcess;
  /** Resolves when the client reports its subscriptions in place (fanout); then it waits for go(). */
  readonly phase: Promise<void>;
  readonly result: Promise<Record<string, number>>;
  go(): void;
}

/** Runs one load client process on `cores`. */
function runLoad(args: Record<string, unknown>, cores = '1'): Load {
  const [cmd, argv] = pinned(cores, [join(here, 'load.js'), JSON.stringify(args)]);
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  let onPhase: () => void = () => undefined;
  const phase = new Promise<void>((resolve) => { onPhase = resolve; });
  const result = new Promise<Record<string, number>>((resolve, reject) => {
    let pending = '';
    child.stdout?.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines.filter((l) => l.startsWith('{'))) {
        const value = JSON.parse(line) as Record<string, number>;
        if ('phase' in value) onPhase();
        else resolve(value);
      }
    });
    child.once('exit', () => reject(new Error('load client exited without a result')));
  });
  return { child, phase, result, go: () => { child.stdin?.write('go\n'); } };
}

const rawDir = mkdtempSync(join(tmpdir(), 'cablecat-bench-'));
let rawSeq = 0;

/**
 * Runs the load of one measurement in `parts` client processes at once (1: core 1; 2: both cores, shared
 * with the server), each with its share of the count, concurrency and sample; only the first sends the
 * broadcasts. Counts are summed, rates taken over the wall-clock span of all parts, percentiles over the
 * merged raw samples. `atPhase` runs once every part has its subscriptions in place, before go.
 */
async function runLoads(args: Record<string, unknown> & { count: number; concurrency: number; sample: number }, parts: number, atPhase: () => void = () => undefined): Promise<Record<string, number>> {
  const share = (n: number, i: number): number => Math.floor(n / parts) + (i < n % parts ? 1 : 0);
  const files = Array.from({ length: parts }, () => join(rawDir, `raw-${rawSeq++}.f64`));
  const loads = files.map((rawOut, i) => runLoad({ ...args, count: share(args.count, i), concurrency: Math.max(1, share(args.concurrency, i)), sample: share(args.sample, i), send: i === 0, ...(parts > 1 ? { rawOut } : {}) }, parts === 1 ? '1' : '0,1'));
  if (args.mode === 'fanout') {
    await Promise.all(loads.map((l) => l.phase));
    atPhase();
    for (const l of loads) l.go();
  }
  const results = await Promise.all(loads.map((l) => l.result));
  if (parts === 1) return results[0] ?? {};
  const chunks = files.map((file) => {
    const bytes = readFileSync(file);
    rmSync(file, { force: true });
    return new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  });
  const raw = new Float64Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => { raw.set(c, at); return at + c.length; }, 0);
  raw.sort(); // a typed array sorts numerically
  const pct = (p: number): number => raw[Math.min(raw.length - 1, Math.floor((p / 100) * raw.length))] ?? 0;
  const sum = (key: string): number => results.reduce((acc, r) => acc + Number(r[key] ?? 0), 0);
  const span = (Math.max(...results.map((r) => Number(r.ended ?? 0))) - Math.min(...results.map((r) => Number(r.started ?? 0)))) / 1000;
  if (args.mode === 'connect') {
    return { connected: sum('connected'), failed: sum('failed'), rate: sum('connected') / span, p50: pct(50), p99: pct(99) };
  }
  return { subscribers: sum('subscribers'), failed: sum('failed'), expected: sum('expected'), received: sum('received'), lost: sum('lost'), misordered: sum('misordered'),
    deliveriesPerS: sum('received') / span, p50: pct(50), p95: pct(95), p99: pct(99), max: pct(100) };
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

/**
 * User and system CPU time, ms (clock ticks are 1/100 s on Linux). /proc/<pid>/stat is the whole process:
 * every thread (worker threads, V8's helpers), including threads that have exited; /proc/<pid>/task/<tid>/stat
 * is one thread.
 */
function cpuMs(pid: number, tid?: number): { user: number; total: number } {
  const file = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  const fields = readFileSync(file, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const user = Number(fields[11] ?? 0) * 10;
  return { user, total: user + Number(fields[12] ?? 0) * 10 };
}

/** The process, and its main thread (tid = pid: the JavaScript main thread, the primary in worker mode). */
function cpuSplit(pid: number): { all: { user: number; total: number }; main: { user: number; total: number } } {
  return { all: cpuMs(pid), main: cpuMs(pid, pid) };
}

/** Threads of the process, for the record (a worker mode should show its worker threads here). */
function threadCount(pid: number): number {
  try { return readdirSync(`/proc/${pid}/task`).length; } catch { return 0; }
}

type Row = Record<string, unknown> & { server: string; scenario: string; size: number };

async function measure(spec: ServerSpec, scenario: string, size: number, pid: number, port: number, token: string): Promise<Row> {
  // A stream per server: the Redis broker keeps history between runs.
  const base = { port, path: spec.jwt ? `/cable?jid=${token}` : '/cable', http: `http://127.0.0.1:${port}`, count: size, concurrency: 100, stream: `bench-${port}-${Date.now()}`, sample: 200, broadcasts, interval, ...(spec.redisChannel ? { redisChannel: spec.redisChannel.replace('PORT', String(port)) } : {}) };
  const row: Row = { server: spec.name, scenario, size, threads: threadCount(pid) };
  const parts = spec.spread ? 2 : 1;
  const loadCores = spec.spread ? '0,1' : '1';
  if (scenario === 'connect') {
    // Warm-up first (the same for every server, --warmup connects per worker, in passes of at most the size):
    // a fresh process spends its first thousands of connects compiling (TurboFan) what a long-running server
    // has long compiled, and recompiling when the first user and stream go away; the steady cost is measured.
    for (let left = warmupConnects * (spec.workers ?? 1); left > 0; left -= size) {
      await runLoads({ ...base, mode: 'connect', count: Math.min(left, size) }, parts);
    }
    const before = cpuSplit(pid);
    const r = await runLoads({ ...base, mode: 'connect' }, parts);
    const after = cpuSplit(pid);
    const n = Math.max(1, r.connected ?? 1);
    return { ...row, ...r, serverCpuUsPerConn: ((after.all.total - before.all.total) * 1000) / n, serverUserCpuUsPerConn: ((after.all.user - before.all.user) * 1000) / n,
      mainThreadCpuUsPerConn: ((after.main.total - before.main.total) * 1000) / n };
  }
  if (scenario === 'replay') {
    const before = cpuMs(pid);
    const r = await runLoads({ ...base, mode: 'replay', history: 100 }, 1);
    return { ...row, ...r, serverCpuUsPerConn: ((cpuMs(pid).total - before.total) * 1000) / Math.max(1, r.caughtUp ?? 1) };
  }
  if (scenario === 'fanout' || scenario === 'forward') {
    // CPU is read once the subscriptions are in place: connecting is not part of delivering. `forward` is a
    // fan-out of many broadcasts to few subscribers: its cost is per broadcast (the HTTP request, and in
    // worker mode the main thread handing each broadcast to every worker), read per thread.
    const args = scenario === 'forward' ? { ...base, count: FORWARD_SUBSCRIBERS, broadcasts: FORWARD_BROADCASTS } : base;
    let before = cpuSplit(pid);
    const r = await runLoads({ ...args, mode: 'fanout' }, parts, () => { before = cpuSplit(pid); });
    const after = cpuSplit(pid);
    const delivered = Math.max(1, r.received ?? 1);
    const sent = Math.max(1, args.broadcasts);
    return { ...row, ...r, broadcasts: sent, serverUserCpuUsPerDelivery: ((after.all.user - before.all.user) * 1000) / delivered, serverCpuUsPerDelivery: ((after.all.total - before.all.total) * 1000) / delivered,
      serverCpuUsPerBroadcast: ((after.all.total - before.all.total) * 1000) / sent, mainThreadCpuUsPerBroadcast: ((after.main.total - before.main.total) * 1000) / sent };
  }
  // Memory of idle subscribed connections, opened in two halves: `all` is the growth over the whole connect
  // (what an operator pays), `marginal` the growth over the second half (one-off heap growth excluded).
  const half = Math.floor(size / 2);
  const start = rssKb(pid);
  const first = runLoad({ ...base, mode: 'idle', count: half }, loadCores);
  await first.result;
  await new Promise((r) => setTimeout(r, 1000));
  const middle = rssKb(pid);
  const second = runLoad({ ...base, mode: 'idle', count: half }, loadCores);
  await second.result;
  await new Promise((r) => setTimeout(r, 1000));
  const end = rssKb(pid);
  for (const load of [first.child, second.child]) load.stdin?.write('stop\n');
  return { ...row, rssStartKb: start, rssEndKb: end, bytesPerConnection: Math.round(((end - middle) * 1024) / half), bytesPerConnectionAll: Math.round(((end - start) * 1024) / (2 * half)) };
}

function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] ?? NaN : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

function table(results: readonly Row[]): string {
  const f = (v: unknown, d = 1): string => (typeof v === 'number' ? v.toFixed(d) : '');
  const lines = [
    '| server | scenario | n | conn/s | p50 ms | p95 ms | p99 ms | max ms | deliveries/s | lost | server CPU µs/conn (user) | server user CPU µs/delivery | server CPU µs/delivery | bytes/conn (marginal) | bytes/conn (all) | all caught up s |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    lines.push(`| ${r.server} | ${r.scenario} | ${r.size} | ${f(r.rate, 0)} | ${f(r.p50)} | ${f(r.p95)} | ${f(r.p99)} | ${f(r.max)} | ${f(r.deliveriesPerS, 0)} | ${r.lost ?? ''} | ${f(r.serverCpuUsPerConn, 0)}${typeof r.serverUserCpuUsPerConn === 'number' ? ` (${f(r.serverUserCpuUsPerConn, 0)})` : ''} | ${f(r.serverUserCpuUsPerDelivery, 2)} | ${f(r.serverCpuUsPerDelivery, 2)} | ${r.bytesPerConnection ?? ''} | ${r.bytesPerConnectionAll ?? ''} | ${f(r.allCaughtUpS, 2)} |${r.error ? ` ${String(r.error)}` : ''}`);
  }
  return lines.join('\n');
}

/** The targets of the benchmarks issue, read off this run as ratios. */
function ratios(results: readonly Row[]): string {
  const get = (server: string, scenario: string, size: number, key: string): number =>
    median(results.filter((r) => r.server === server && r.scenario === scenario && r.size === size).map((r) => Number(r[key] ?? NaN)).filter(Number.isFinite));
  const lines: string[] = [];
  for (const size of sizes) {
    const ratio = (a: number, b: number): string => (Number.isFinite(a / b) ? (a / b).toFixed(2) : 'n/a');
    lines.push(`n=${size}:`,
      `  fan-out p99 cablecat over redis/bare-uws over http = ${ratio(get('cablecat-redis', 'fanout', size, 'p99'), get('bare-uws', 'fanout', size, 'p99'))}`,
      `  fan-out p99 cablecat/bare-uws = ${ratio(get('cablecat-jwt', 'fanout', size, 'p99'), get('bare-uws', 'fanout', size, 'p99'))} (target ≤ 1.5)`,
      `  deliveries/s cablecat/bare-uws = ${ratio(get('cablecat-jwt', 'fanout', size, 'deliveriesPerS'), get('bare-uws', 'fanout', size, 'deliveriesPerS'))} (target ≥ 0.7)`,
      `  deliveries/s cablecat/ws = ${ratio(get('cablecat-jwt', 'fanout', size, 'deliveriesPerS'), get('ws', 'fanout', size, 'deliveriesPerS'))}; server CPU per delivery ws/cablecat = ${ratio(get('ws', 'fanout', size, 'serverUserCpuUsPerDelivery'), get('cablecat-jwt', 'fanout', size, 'serverUserCpuUsPerDelivery'))} (target ≥ 3)`,
      `  connect rate jwt/rpc = ${ratio(get('cablecat-jwt', 'connect', size, 'rate'), get('cablecat-rpc', 'connect', size, 'rate'))}; p50 rpc/jwt = ${ratio(get('cablecat-rpc', 'connect', size, 'p50'), get('cablecat-jwt', 'connect', size, 'p50'))} (target ≥ 2)`,
      `  fan-out server CPU per delivery broker-memory/no broker = ${ratio(get('cablecat-broker-memory', 'fanout', size, 'serverUserCpuUsPerDelivery'), get('cablecat-jwt', 'fanout', size, 'serverUserCpuUsPerDelivery'))} (target ≤ 1.2); broker-redis/no broker = ${ratio(get('cablecat-broker-redis', 'fanout', size, 'serverUserCpuUsPerDelivery'), get('cablecat-jwt', 'fanout', size, 'serverUserCpuUsPerDelivery'))}`,
      `  fan-out p99 broker-memory/no broker = ${ratio(get('cablecat-broker-memory', 'fanout', size, 'p99'), get('cablecat-jwt', 'fanout', size, 'p99'))}; broker-redis/no broker = ${ratio(get('cablecat-broker-redis', 'fanout', size, 'p99'), get('cablecat-jwt', 'fanout', size, 'p99'))}`,
      `  history replay of 100 messages to ${size} returning clients: memory ${get('cablecat-broker-memory', 'replay', size, 'allCaughtUpS').toFixed(2)} s, redis ${get('cablecat-broker-redis', 'replay', size, 'allCaughtUpS').toFixed(2)} s until all caught up`,
      `  connect rate cablecat/bare-uws = ${ratio(get('cablecat-jwt', 'connect', size, 'rate'), get('bare-uws', 'connect', size, 'rate'))} (target ≥ 0.67)`,
      `  server CPU per connect cablecat/bare-uws = ${ratio(get('cablecat-jwt', 'connect', size, 'serverCpuUsPerConn'), get('bare-uws', 'connect', size, 'serverCpuUsPerConn'))} (target ≤ 1.5)`,
      `  memory marginal cablecat − bare-uws = ${get('cablecat-jwt', 'memory', size, 'bytesPerConnection') - get('bare-uws', 'memory', size, 'bytesPerConnection')} bytes/conn`,
      `  memory over the whole connect cablecat − bare-uws = ${get('cablecat-jwt', 'memory', size, 'bytesPerConnectionAll') - get('bare-uws', 'memory', size, 'bytesPerConnectionAll')} bytes/conn (target ≤ 1024)`);
  }
  return lines.join('\n');
}

/** --servers filters the servers of every run; the workers comparison runs whenever --workers is given. */
function selected(spec: ServerSpec): boolean {
  if (spec.spread) return true;
  return only.length === 0 ? spec.optIn !== true : only.includes(spec.name);
}

function runs(spec: ServerSpec, scenario: string): boolean {
  if (scenario === 'replay') return spec.broker === true;
  // forward measures the main thread's per-broadcast hand-off to workers: the workers comparison only.
  if (scenario === 'forward') return spec.spread === true;
  if (spec.connectOnly) return scenario === 'connect';
  if (spec.fanoutOnly) return scenario === 'fanout';
  return true;
}

/**
 * The workers comparison of issue 15: cablecat with --workers N and bare uWS, each allowed both cores and
 * loaded by two client processes on the same cores; CPU per operation is the comparable figure.
 */
function workersReport(results: readonly Row[]): string {
  const get = (server: string, scenario: string, size: number, key: string): number =>
    median(results.filter((r) => r.server === server && r.scenario === scenario && r.size === size).map((r) => Number(r[key] ?? NaN)).filter(Number.isFinite));
  const f = (v: number, d = 1): string => (Number.isFinite(v) ? v.toFixed(d) : '');
  const ratio = (a: number, b: number): string => (Number.isFinite(a / b) ? (a / b).toFixed(2) : 'n/a');
  const names = ['bare-uws-2l', ...workerCounts.map((n) => `cablecat-jwt-w${n}`)];
  const [w1, w2] = [`cablecat-jwt-w${workerCounts[0] ?? 1}`, `cablecat-jwt-w${workerCounts[1] ?? workerCounts[0] ?? 1}`];
  /**
   * The forward scenario with two or more worker counts above 1: CPU per broadcast as a line in N, for the main
   * thread (handing a broadcast to each worker) and for the whole process (each worker receiving it too).
   */
  const perWorker = (size: number): string[] => {
    const ns = workerCounts.filter((n) => n > 1).sort((a, b) => a - b);
    const lo = ns[0];
    const hi = ns[ns.length - 1];
    if (lo === undefined || hi === undefined || lo === hi) return [];
    const at = (n: number, key: string): number => get(`cablecat-jwt-w${n}`, 'forward', size, key);
    const slope = (key: string): number => (at(hi, key) - at(lo, key)) / (hi - lo);
    const base = (key: string): number => at(lo, key) - lo * slope(key);
    return [`  forward, per broadcast, as a + b·N over N = ${lo}…${hi}: main thread ${f(base('mainThreadCpuUsPerBroadcast'))} + ${f(slope('mainThreadCpuUsPerBroadcast'))}·N µs; whole process ${f(base('serverCpuUsPerBroadcast'))} + ${f(slope('serverCpuUsPerBroadcast'))}·N µs`];
  };
  const lines = ['Workers comparison (server allowed cores 0–1, two load clients on the same cores, each half the connections):', ''];
  for (const size of sizes) {
    lines.push(`n=${size}:`, '',
      '| server | threads | conn/s | connect p99 ms | CPU µs/connect (user) | main thread µs/connect | deliveries/s | fan-out p99 ms | lost | CPU µs/delivery (user) | µs/broadcast, forward: all threads | main thread | bytes/conn (all) |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const name of names) {
      const g = (scenario: string, key: string): number => get(name, scenario, size, key);
      lines.push(`| ${name} | ${f(g('connect', 'threads'), 0)} | ${f(g('connect', 'rate'), 0)} | ${f(g('connect', 'p99'))} | ${f(g('connect', 'serverCpuUsPerConn'), 0)} (${f(g('connect', 'serverUserCpuUsPerConn'), 0)}) | ${f(g('connect', 'mainThreadCpuUsPerConn'), 0)} | ${f(g('fanout', 'deliveriesPerS'), 0)} | ${f(g('fanout', 'p99'))} | ${f(g('fanout', 'lost'), 0)} | ${f(g('fanout', 'serverCpuUsPerDelivery'), 2)} (${f(g('fanout', 'serverUserCpuUsPerDelivery'), 2)}) | ${f(g('forward', 'serverCpuUsPerBroadcast'), 0)} | ${f(g('forward', 'mainThreadCpuUsPerBroadcast'), 0)} | ${f(g('memory', 'bytesPerConnectionAll'), 0)} |`);
    }
    const g = (server: string, scenario: string, key: string): number => get(server, scenario, size, key);
    lines.push('',
      `  connects/s ${w2}/${w1} = ${ratio(g(w2, 'connect', 'rate'), g(w1, 'connect', 'rate'))}; CPU per connect ${w1}/bare-uws-2l = ${ratio(g(w1, 'connect', 'serverCpuUsPerConn'), g('bare-uws-2l', 'connect', 'serverCpuUsPerConn'))}, ${w2}/bare-uws-2l = ${ratio(g(w2, 'connect', 'serverCpuUsPerConn'), g('bare-uws-2l', 'connect', 'serverCpuUsPerConn'))}, ${w2}/${w1} = ${ratio(g(w2, 'connect', 'serverCpuUsPerConn'), g(w1, 'connect', 'serverCpuUsPerConn'))}`,
      `  deliveries/s ${w2}/${w1} = ${ratio(g(w2, 'fanout', 'deliveriesPerS'), g(w1, 'fanout', 'deliveriesPerS'))}; CPU per delivery ${w1}/bare-uws-2l = ${ratio(g(w1, 'fanout', 'serverCpuUsPerDelivery'), g('bare-uws-2l', 'fanout', 'serverCpuUsPerDelivery'))}, ${w2}/bare-uws-2l = ${ratio(g(w2, 'fanout', 'serverCpuUsPerDelivery'), g('bare-uws-2l', 'fanout', 'serverCpuUsPerDelivery'))}, ${w2}/${w1} = ${ratio(g(w2, 'fanout', 'serverCpuUsPerDelivery'), g(w1, 'fanout', 'serverCpuUsPerDelivery'))}`,
      `  main thread CPU per broadcast (forward, ${FORWARD_SUBSCRIBERS} subscribers): ${w1} ${f(g(w1, 'forward', 'mainThreadCpuUsPerBroadcast'))} µs, ${w2} ${f(g(w2, 'forward', 'mainThreadCpuUsPerBroadcast'))} µs, bare-uws-2l ${f(g('bare-uws-2l', 'forward', 'mainThreadCpuUsPerBroadcast'))} µs`,
      ...perWorker(size),
      `  one thread, pinned, one load client (same run): CPU per connect cablecat-jwt/bare-uws = ${ratio(g('cablecat-jwt', 'connect', 'serverCpuUsPerConn'), g('bare-uws', 'connect', 'serverCpuUsPerConn'))}; memory (all) cablecat-jwt − bare-uws = ${g('cablecat-jwt', 'memory', 'bytesPerConnectionAll') - g('bare-uws', 'memory', 'bytesPerConnectionAll')} bytes/conn`, '');
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const token = await new SignJWT({ ext: '{"uid":"bench"}' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(createSecretKey(Buffer.from(SECRET)));
  const rpcApp = await startProcess('1', [join(here, 'rpc-app.js'), String(RPC_PORT)], /ready/);
  const results: Row[] = [];
  let port = Number(opt('base_port', '19100'));
  try {
    for (const size of sizes) {
      for (let round = 1; round <= rounds; round++) {
        for (const spec of SERVERS.filter(selected)) {
          for (const scenario of scenarios) {
            if (!runs(spec, scenario)) continue;
            port++;
            const server = await startProcess(spec.spread ? '0,1' : '0', spec.args(port), spec.ready);
            await new Promise((r) => setTimeout(r, 300));
            process.stderr.write(`${spec.name} · ${scenario} · ${size}${rounds > 1 ? ` · round ${round}` : ''}\n`);
            try {
              results.push(await measure(spec, scenario, size, server.pid ?? 0, port, token));
            } catch (err) {
              results.push({ server: spec.name, scenario, size, error: String(err) });
            }
            server.kill('SIGKILL');
            await new Promise((r) => setTimeout(r, 300));
          }
        }
      }
    }
  } finally {
    rpcApp.kill('SIGKILL');
    rmSync(rawDir, { recursive: true, force: true });
  }
  console.log(`\n${table(results)}\n\n${ratios(results)}${workerCounts.length > 0 ? `\n\n${workersReport(results)}` : ''}`);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  const file = join(root, 'bench/results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ sizes, broadcasts, workers: workerCounts, taskset: hasTaskset, results }, null, 2));
  console.log(`\nresults: ${file}`);
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
