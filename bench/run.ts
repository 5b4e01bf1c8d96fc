// npm run bench -- [--sizes=1000,5000] [--scenarios=connect,fanout,memory] [--broadcasts=50]
// Each server is its own process (pinned to core 0 when taskset exists), the load client another (core 1).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { createSecretKey } from 'node:crypto';
import { SignJWT } from 'jose';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const opt = (name: string, def: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const sizes = opt('sizes', '1000').split(',').map(Number);
const scenarios = opt('scenarios', 'connect,fanout,memory').split(',');
const broadcasts = Number(opt('broadcasts', '50'));
const hasTaskset = spawnSync('sh', ['-c', 'command -v taskset'], { encoding: 'utf8' }).stdout.trim() !== '';
const SECRET = 'bench-secret-0123456789abcdef';

function pinned(core: number, args: string[]): [string, string[]] {
  return hasTaskset ? ['taskset', ['-c', String(core), process.execPath, ...args]] : [process.execPath, args];
}

async function startProcess(core: number, args: string[], ready: RegExp): Promise<ChildProcess> {
  const [cmd, argv] = pinned(core, args);
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], cwd: root, env: { ...process.env, NODE_ENV: 'development' } });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => { out += d.toString(); if (ready.test(out)) resolve(); };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${out}`)));
    setTimeout(() => reject(new Error(`not ready: ${out}`)), 15_000).unref();
  });
  return child;
}

interface ServerSpec { name: string; args: (port: number) => string[]; ready: RegExp; rpc?: boolean }

const cablecatArgs = (port: number, extra: string[] = []): string[] => [join(root, 'dist/src/cli/main.js'), '--port', String(port), '--host', '127.0.0.1',
  '--secret', SECRET, '--public_streams', '--broadcast_key', 'none', '--log_level', 'info', '--log_format', 'json', '--ping_interval', '60', '--max_conn', '0', ...extra];
const SERVERS: ServerSpec[] = [
  { name: 'bare-uws (limit)', args: (p) => [join(here, 'baselines/bare-uws.js'), String(p)], ready: /ready/ },
  { name: 'ws library', args: (p) => [join(here, 'baselines/ws-server.js'), String(p)], ready: /ready/ },
  { name: 'cablecat (jwt)', args: (p) => cablecatArgs(p, ['--norpc']), ready: /cablecat started/ },
  { name: 'cablecat (rpc)', args: (p) => cablecatArgs(p, ['--jwt_secret', '', '--rpc_host', '127.0.0.1:50061']), ready: /cablecat started/, rpc: true },
];

async function runLoad(args: Record<string, unknown>): Promise<Record<string, number>> {
  const [cmd, argv] = pinned(1, [join(here, 'load.js'), JSON.stringify(args)]);
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  await new Promise((r) => child.once('exit', r));
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, number>;
}

function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

function userCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11] ?? 0) * 1000) / 100;
}

async function main(): Promise<void> {
  const token = await new SignJWT({ ext: '{"uid":"bench"}' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(createSecretKey(Buffer.from(SECRET)));
  const rpcApp = await startProcess(1, [join(here, 'rpc-app.js'), '50061'], /ready/);
  const results: Array<Record<string, unknown>> = [];
  let port = 19100;
  try {
    for (const size of sizes) {
      for (const spec of SERVERS) {
        for (const scenario of scenarios) {
          if (spec.rpc && scenario !== 'connect') continue;
          port++;
          const server = await startProcess(0, spec.args(port), spec.ready);
          await new Promise((r) => setTimeout(r, 300));
          const pid = hasTaskset ? Number(spawnSync('pgrep', ['-P', String(server.pid)], { encoding: 'utf8' }).stdout.trim().split('\n')[0]) || server.pid! : server.pid!;
          const base = { url: `ws://127.0.0.1:${port}/cable?jid=${token}`, http: `http://127.0.0.1:${port}`, count: size, concurrency: 100, stream: 'bench', sample: 200, broadcasts };
          process.stderr.write(`${spec.name} · ${scenario} · ${size}\n`);
          let row: Record<string, unknown> = { server: spec.name, scenario, size };
          try {
            if (scenario === 'connect') row = { ...row, ...(await runLoad({ ...base, mode: 'connect' })) };
            if (scenario === 'fanout') {
              const cpuBefore = userCpuMs(pid);
              const r = await runLoad({ ...base, mode: 'fanout' });
              row = { ...row, ...r, serverUserCpuUsPerDelivery: ((userCpuMs(pid) - cpuBefore) * 1000) / Math.max(1, r.received ?? 1) };
            }
            if (scenario === 'memory') {
              const before = rssKb(pid);
              const [cmd, argv] = pinned(1, [join(here, 'load.js'), JSON.stringify({ ...base, mode: 'idle' })]);
              const load = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
              await new Promise<void>((resolve) => load.stdout.on('data', () => resolve()));
              await new Promise((r) => setTimeout(r, 1000));
              const after = rssKb(pid);
              load.stdin.write('stop\n');
              await new Promise((r) => load.once('exit', r));
              row = { ...row, rssBeforeKb: before, rssAfterKb: after, bytesPerConnection: Math.round(((after - before) * 1024) / size) };
            }
          } catch (err) {
            row = { ...row, error: String(err) };
          }
          results.push(row);
          server.kill('SIGKILL');
          await new Promise((r) => setTimeout(r, 300));
        }
      }
    }
  } finally {
    rpcApp.kill('SIGKILL');
  }
  const f = (v: unknown, d = 1): string => (typeof v === 'number' ? v.toFixed(d) : '');
  console.log('\n| server | scenario | n | conn/s | p50 ms | p99 ms | deliveries/s | p95 ms | lost | CPU µs/delivery | bytes/conn |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    console.log(`| ${String(r.server)} | ${String(r.scenario)} | ${String(r.size)} | ${f(r.rate, 0)} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.deliveriesPerS, 0)} | ${f(r.p95)} | ${r.lost ?? ''} | ${f(r.serverUserCpuUsPerDelivery, 2)} | ${r.bytesPerConnection ?? ''} |${r.error ? ' ' + String(r.error) : ''}`);
  }
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  const file = join(root, 'bench/results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ sizes, broadcasts, taskset: hasTaskset, results }, null, 2));
  console.log(`\nresults: ${file}`);
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
