// npm run build && node dist/bench/presence.js [--members=10000] [--churn_rate=1000] [--churn_s=10] [--brokers=memory,redis]
// Presence cost on the server: a stream with N members (joined through RPC, as anycable-rails does),
// info answers with every record, and join/leave churn at a fixed rate. The server is its own process
// (core 0 when taskset exists); this process is the load client and the RPC app (core 1).
// Members and churners name the presence stream in $p without following it, so each event goes to
// the one watcher: what is measured is presence, not fan-out.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadAnycablePackage } from '../src/rpc/grpc-transport.js';
import { RawWs } from './raw-ws.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const opt = (name: string, def: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const MEMBERS = Number(opt('members', '10000'));
const CHURN_RATE = Number(opt('churn_rate', '1000'));
const CHURN_S = Number(opt('churn_s', '10'));
const CHURNERS = 100;
const INFO_REQUESTS = 20;
const BROKERS = opt('brokers', 'memory,redis').split(',');
const PORT = Number(opt('port', '18431'));
const RPC_PORT = Number(opt('rpc_port', '50071'));
const hasTaskset = spawnSync('sh', ['-c', 'command -v taskset'], { encoding: 'utf8' }).stdout.trim() !== '';

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 10;
}

/** The RPC app: every connection is accepted; PresenceBench names the presence stream and joins members. */
async function startRpcApp(stream: string): Promise<grpc.Server> {
  const server = new grpc.Server();
  const service = (loadAnycablePackage().RPC as unknown as { service: grpc.ServiceDefinition }).service;
  server.addService(service, {
    Connect: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      cb(null, { status: 1, identifiers: '{"uid":"bench"}', transmissions: [JSON.stringify({ type: 'welcome', sid: String(call.metadata.get('sid')[0] ?? '') })] });
    },
    Command: (call: grpc.ServerUnaryCall<{ command: string; identifier: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const { command, identifier } = call.request;
      if (command !== 'subscribe') return cb(null, { status: 1 });
      const params = JSON.parse(identifier) as { pid: string; churn?: boolean };
      cb(null, {
        status: 1,
        transmissions: [JSON.stringify({ identifier, type: 'confirm_subscription' })],
        env: { istate: { $p: stream } },
        ...(params.churn ? {} : { presence: { type: 'join', id: params.pid, info: JSON.stringify({ name: `member ${params.pid}` }) } }),
      });
    },
    Disconnect: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { status: 1 }),
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${RPC_PORT}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return server;
}

async function startServer(broker: string): Promise<ChildProcess> {
  const args = [join(root, 'dist/src/cli/main.js'), '--port', String(PORT), '--host', '127.0.0.1', '--http_broadcast_port', String(PORT),
    '--secret', 'bench-secret-0123456789abcdef', '--public_streams', '--rpc_host', `127.0.0.1:${RPC_PORT}`, '--disconnect_mode', 'never',
    '--broker', broker, '--presence_ttl', '15', '--ping_interval', '60', '--log_format', 'json', '--max_conn', '0'];
  const [cmd, argv] = hasTaskset ? ['taskset', ['-c', '0', process.execPath, ...args]] : [process.execPath, args];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: root });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => { out += d.toString(); if (/cablecat started/.test(out)) resolve(); };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
  return child;
}

/** A connection whose frames resolve waiters by predicate. */
class Client {
  private waiters: Array<{ match: (f: Record<string, unknown>) => boolean; resolve: (f: Record<string, unknown>) => void }> = [];
  joins = 0;
  leaves = 0;
  ws!: RawWs;

  static async open(): Promise<Client> {
    const client = new Client();
    const welcome = client.next((f) => f.type === 'welcome');
    client.ws = await RawWs.open(PORT, '/cable', (payload) => client.onFrame(payload));
    await welcome;
    return client;
  }

  private onFrame(payload: Buffer): void {
    const frame = JSON.parse(payload.toString()) as Record<string, unknown>;
    const message = frame.message as { type?: string } | undefined;
    if (frame.type === 'presence' && message?.type === 'join') this.joins++;
    if (frame.type === 'presence' && message?.type === 'leave') this.leaves++;
    const i = this.waiters.findIndex((w) => w.match(frame));
    if (i === -1) return;
    const [w] = this.waiters.splice(i, 1);
    w?.resolve(frame);
  }

  next(match: (f: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  async subscribe(identifier: string): Promise<void> {
    const confirmed = this.next((f) => f.type === 'confirm_subscription' && f.identifier === identifier);
    this.ws.send(JSON.stringify({ command: 'subscribe', identifier }));
    await confirmed;
  }
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

async function run(broker: string): Promise<Record<string, number | string>> {
  const stream = `presence-bench-${Date.now()}`;
  const rpc = await startRpcApp(stream);
  const server = await startServer(broker);
  const pid = server.pid ?? 0;
  const all: Client[] = [];
  try {
    const watcher = await Client.open();
    all.push(watcher);
    const watchId = JSON.stringify({ channel: '$pubsub', stream_name: stream });
    await watcher.subscribe(watchId);

    // Members: connect (RPC Connect) and subscribe (RPC Command answering $p and a presence join), 100 at a time.
    let cpu = cpuMs(pid);
    let t = Date.now();
    for (let i = 0; i < MEMBERS; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, MEMBERS - i) }, async (_, k) => {
        const c = await Client.open();
        await c.subscribe(JSON.stringify({ channel: 'PresenceBench', pid: `m${i + k}` }));
        return c;
      }));
      all.push(...batch);
    }
    const allJoined = await until(() => watcher.joins >= MEMBERS, 30_000);
    const populateS = (Date.now() - t) / 1000;
    const populateCpuMs = cpuMs(pid) - cpu;

    // Info: the watcher asks for the member list, one request at a time.
    const latencies: number[] = [];
    let infoBytes = 0;
    cpu = cpuMs(pid);
    for (let i = 0; i < INFO_REQUESTS; i++) {
      const answer = watcher.next((f) => f.type === 'presence' && (f.message as { type?: string }).type === 'info');
      const started = process.hrtime.bigint();
      watcher.ws.send(JSON.stringify({ command: 'presence', identifier: watchId, data: {} }));
      const frame = await answer;
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (i === 0) {
        const message = frame.message as { total: number };
        if (message.total !== MEMBERS) throw new Error(`info total ${message.total}, expected ${MEMBERS}`);
        infoBytes = JSON.stringify(frame).length;
      }
    }
    const infoCpuMs = cpuMs(pid) - cpu;

    // Churn: CHURNERS connections alternate join/leave at CHURN_RATE ops/s in total.
    const churners = await Promise.all(Array.from({ length: CHURNERS }, async (_, i) => {
      const c = await Client.open();
      const id = JSON.stringify({ channel: 'PresenceBench', pid: `c${i}`, churn: true });
      await c.subscribe(id);
      return { c, id, pid: `c${i}`, joined: false };
    }));
    all.push(...churners.map((x) => x.c));
    const eventsBefore = watcher.joins + watcher.leaves;
    const ops = CHURN_RATE * CHURN_S;
    cpu = cpuMs(pid);
    t = Date.now();
    let sent = 0;
    const perTick = CHURN_RATE / 100;
    while (sent < ops) {
      const due = Math.min(ops, Math.floor(((Date.now() - t) / 10) * perTick) + perTick);
      for (; sent < due; sent++) {
        const x = churners[sent % CHURNERS]!;
        x.c.ws.send(JSON.stringify(x.joined ? { command: 'leave', identifier: x.id } : { command: 'join', identifier: x.id, presence: { id: x.pid, info: { n: sent } } }));
        x.joined = !x.joined;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    const churnDelivered = await until(() => watcher.joins + watcher.leaves - eventsBefore >= ops, 30_000);
    const churnWallMs = Date.now() - t;
    const churnCpuMs = cpuMs(pid) - cpu;
    return {
      broker,
      members: MEMBERS,
      'members joined (events seen)': allJoined ? MEMBERS : watcher.joins,
      'populate s': +populateS.toFixed(1),
      'server CPU µs/member (connect+subscribe RPC+join)': Math.round((populateCpuMs * 1000) / MEMBERS),
      'info p50 ms': +percentile(latencies, 50).toFixed(1),
      'info p99 ms': +percentile(latencies, 99).toFixed(1),
      'info bytes': infoBytes,
      'server CPU ms/info': +(infoCpuMs / INFO_REQUESTS).toFixed(1),
      'churn ops': ops,
      'churn events seen': churnDelivered ? ops : watcher.joins + watcher.leaves - eventsBefore,
      'churn ops/s': Math.round(ops / (churnWallMs / 1000)),
      'server CPU % during churn': Math.round((churnCpuMs / churnWallMs) * 100),
      'server CPU µs/op': Math.round((churnCpuMs * 1000) / ops),
    };
  } finally {
    for (const c of all) c.ws.destroy();
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    rpc.forceShutdown();
  }
}

async function main(): Promise<void> {
  if (hasTaskset) spawnSync('taskset', ['-cp', '1', String(process.pid)]);
  const rows = [];
  for (const broker of BROKERS) {
    const row = await run(broker);
    console.log(JSON.stringify(row));
    rows.push(row);
  }
  const keys = Object.keys(rows[0] ?? {});
  console.log(`\n| ${keys.join(' | ')} |\n| ${keys.map(() => '---').join(' | ')} |`);
  for (const row of rows) console.log(`| ${keys.map((k) => String(row[k])).join(' | ')} |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
