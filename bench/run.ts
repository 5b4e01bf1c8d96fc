// npm run bench -- [--sizes=1000,5000,10000] [--scenarios=connect,fanout,memory,replay] [--broadcasts=50]
// Each server is its own process (pinned to core 0 when taskset exists), the load client another (core 1).
// Numbers are reported next to the baselines of the same run, and as ratios to the bare uWS limit.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { createSecretKey } from 'node:crypto';
import { SignJWT } from 'jose';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const opt = (name: string, def: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const sizes = opt('sizes', '1000,5000').split(',').map(Number);
const scenarios = opt('scenarios', 'connect,fanout,memory,replay').split(',');
const broadcasts = Number(opt('broadcasts', '50'));
const interval = Number(opt('interval', '0'));
const only = opt('servers', '').split(',').filter((s) => s !== '');
/**
 * --rounds=N runs every (size, server, scenario) N times, the servers interleaved within each round. On a
 * machine shared with other work, CPU per operation moves with the load of the moment (a slower loop batches
 * fewer events per wakeup); ratios are taken between the medians of the rounds.
 */
const rounds = Number(opt('rounds', '1'));
const hasTaskset = spawnSync('sh', ['-c', 'command -v taskset'], { encoding: 'utf8' }).stdout.trim() !== '';
const SECRET = 'bench-secret-0123456789abcdef';
// Ports are options so two runs on one machine don't collide.
const RPC_PORT = Number(opt('rpc_port', '50061'));

function pinned(core: number, args: string[]): [string, string[]] {
  return hasTaskset ? ['taskset', ['-c', String(core), process.execPath, ...args]] : [process.execPath, args];
}

async function startProcess(core: number, args: string[], ready: RegExp): Promise<ChildProcess> {
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
  ...(beforeRoot ? [{ name: 'cablecat-rpc-before', args: (p: number) => cablecatArgs(p, ['--rpc_host', `127.0.0.1:${RPC_PORT}`, '--disconnect_mode', 'never'], beforeRoot), ready: /cablecat started/, jwt: false, connectOnly: true }] : []),
];

/** Runs the load client; `onPhase` answers its intermediate `{"phase":…}` lines (then it writes "go"). */
function runLoad(args: Record<string, unknown>, onPhase: () => void = () => undefined): { child: ChildProcess; result: Promise<Record<string, number>> } {
  const [cmd, argv] = pinned(1, [join(here, 'load.js'), JSON.stringify(args)]);
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  const result = new Promise<Record<string, number>>((resolve, reject) => {
    let pending = '';
    child.stdout?.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines.filter((l) => l.startsWith('{'))) {
        const value = JSON.parse(line) as Record<string, number>;
        if ('phase' in value) {
          onPhase();
          child.stdin?.write('go\n');
        } else {
          resolve(value);
        }
      }
    });
    child.once('exit', () => reject(new Error('load client exited without a result')));
  });
  return { child, result };
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

/** User and system CPU time of a process, ms (clock ticks are 1/100 s on Linux). */
function cpuMs(pid: number): { user: number; total: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const user = Number(fields[11] ?? 0) * 10;
  return { user, total: user + Number(fields[12] ?? 0) * 10 };
}

type Row = Record<string, unknown> & { server: string; scenario: string; size: number };

async function measure(spec: ServerSpec, scenario: string, size: number, pid: number, port: number, token: string): Promise<Row> {
  // A stream per server: the Redis broker keeps history between runs.
  const base = { port, path: spec.jwt ? `/cable?jid=${token}` : '/cable', http: `http://127.0.0.1:${port}`, count: size, concurrency: 100, stream: `bench-${port}-${Date.now()}`, sample: 200, broadcasts, interval, ...(spec.redisChannel ? { redisChannel: spec.redisChannel.replace('PORT', String(port)) } : {}) };
  const row: Row = { server: spec.name, scenario, size };
  if (scenario === 'connect') {
    // Warm-up first (the same for every server): a fresh process spends its first connects compiling
    // (TurboFan) what a long-running server has long compiled; the steady per-connect cost is measured.
    await runLoad({ ...base, mode: 'connect', count: Math.min(2000, size) }).result;
    const before = cpuMs(pid);
    const r = await runLoad({ ...base, mode: 'connect' }).result;
    const after = cpuMs(pid);
    const n = Math.max(1, r.connected ?? 1);
    return { ...row, ...r, serverCpuUsPerConn: ((after.total - before.total) * 1000) / n, serverUserCpuUsPerConn: ((after.user - before.user) * 1000) / n };
  }
  if (scenario === 'replay') {
    const before = cpuMs(pid);
    const r = await runLoad({ ...base, mode: 'replay', history: 100 }).result;
    return { ...row, ...r, serverCpuUsPerConn: ((cpuMs(pid).total - before.total) * 1000) / Math.max(1, r.caughtUp ?? 1) };
  }
  if (scenario === 'fanout') {
    // CPU is read once the subscriptions are in place: connecting is not part of delivering.
    let before = cpuMs(pid);
    const r = await runLoad({ ...base, mode: 'fanout' }, () => { before = cpuMs(pid); }).result;
    return { ...row, ...r, serverUserCpuUsPerDelivery: ((cpuMs(pid).user - before.user) * 1000) / Math.max(1, r.received ?? 1) };
  }
  // Memory of idle subscribed connections, opened in two halves: `all` is the growth over the whole connect
  // (what an operator pays), `marginal` the growth over the second half (one-off heap growth excluded).
  const half = Math.floor(size / 2);
  const start = rssKb(pid);
  const first = runLoad({ ...base, mode: 'idle', count: half });
  await first.result;
  await new Promise((r) => setTimeout(r, 1000));
  const middle = rssKb(pid);
  const second = runLoad({ ...base, mode: 'idle', count: half });
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
    '| server | scenario | n | conn/s | p50 ms | p95 ms | p99 ms | max ms | deliveries/s | lost | server CPU µs/conn (user) | server user CPU µs/delivery | bytes/conn (marginal) | bytes/conn (all) | all caught up s |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    lines.push(`| ${r.server} | ${r.scenario} | ${r.size} | ${f(r.rate, 0)} | ${f(r.p50)} | ${f(r.p95)} | ${f(r.p99)} | ${f(r.max)} | ${f(r.deliveriesPerS, 0)} | ${r.lost ?? ''} | ${f(r.serverCpuUsPerConn, 0)}${typeof r.serverUserCpuUsPerConn === 'number' ? ` (${f(r.serverUserCpuUsPerConn, 0)})` : ''} | ${f(r.serverUserCpuUsPerDelivery, 2)} | ${r.bytesPerConnection ?? ''} | ${r.bytesPerConnectionAll ?? ''} | ${f(r.allCaughtUpS, 2)} |${r.error ? ` ${String(r.error)}` : ''}`);
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

async function main(): Promise<void> {
  const token = await new SignJWT({ ext: '{"uid":"bench"}' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(createSecretKey(Buffer.from(SECRET)));
  const rpcApp = await startProcess(1, [join(here, 'rpc-app.js'), String(RPC_PORT)], /ready/);
  const results: Row[] = [];
  let port = Number(opt('base_port', '19100'));
  try {
    for (const size of sizes) {
      for (let round = 1; round <= rounds; round++) {
        for (const spec of SERVERS.filter((s) => (only.length === 0 && s.optIn !== true) || only.includes(s.name))) {
          for (const scenario of scenarios) {
            if (scenario === 'replay' ? !spec.broker : (spec.connectOnly && scenario !== 'connect') || (spec.fanoutOnly && scenario !== 'fanout')) continue;
            port++;
            const server = await startProcess(0, spec.args(port), spec.ready);
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
  }
  console.log(`\n${table(results)}\n\n${ratios(results)}`);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  const file = join(root, 'bench/results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ sizes, broadcasts, taskset: hasTaskset, results }, null, 2));
  console.log(`\nresults: ${file}`);
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
