import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FLAGS } from '../../src/config/flags.js';
import { VERSION } from '../../src/version.js';
import { detectHost, findInstalled } from '../../src/server/uws.js';
import { OFFICIAL, bundledUwsFor } from '../../src/server/uws-select.js';
import { serverArgs } from '../../src/cli/healthcheck.js';
import { withServer } from '../helpers/server.js';

// These run the CLI the way users do: as a process, through npm, and from the packed tarball.
const ROOT = process.cwd();
const CLI = join(ROOT, 'bin/cablecat.js');
const FORBID = join(ROOT, 'test/fixtures/forbid-heavy-modules.mjs');
const UWS_PACKAGES = 'uWebSockets\\.js|@btc-vision/uwebsockets\\.js|@trufflesuite/uws-js-unofficial';
/** A clean environment: no ANYCABLE_* from the developer's shell. */
const BASE_ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };

/** Runs the CLI with uWS, gRPC, Redis, NATS and pino made unloadable (unless `forbid` says otherwise). */
function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['--import', FORBID, CLI, ...args], { encoding: 'utf8', env: { ...BASE_ENV, ...env }, timeout: 20_000 });
}

function assertNoStackTrace(output: string): void {
  assert.doesNotMatch(output, /^\s+at .+:\d+:\d+\)?$/m, `stack trace in:\n${output}`);
}

async function takenPort(): Promise<Server> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

function portOf(server: Server): number {
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

async function freePort(): Promise<number> {
  const server = await takenPort();
  const port = portOf(server);
  server.close();
  await once(server, 'close');
  return port;
}

/** Resolves true when something accepts TCP connections on the port, false on ECONNREFUSED. */
async function listening(port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

function expectedUws(): string {
  const pkg = findInstalled(OFFICIAL)?.pkg ?? bundledUwsFor(detectHost());
  assert.ok(pkg, 'this machine has a fitting uWS package');
  return pkg.name;
}

describe('CLI answers without loading uWS, gRPC, Redis, NATS or pino', () => {
  test('--help lists the flags and --version', () => {
    const r = cli(['--help']);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^Usage: cablecat \[options\]/);
    assert.match(r.stdout, /--health_path/);
    assert.match(r.stdout, /-v, --version/);
  });

  test('--version tells the cablecat version, the runtime and the uWS binary that will serve', () => {
    const r = cli(['--version']);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `cablecat ${VERSION}`);
    assert.match(lines[1] ?? '', new RegExp(`^runtime: Node ${process.version.replace(/\./g, '\\.')} \\(ABI ${process.versions.modules}\\) on ${process.platform}-${process.arch}`));
    assert.ok(lines[2]?.startsWith(`uWebSockets.js: ${expectedUws()}@`), lines[2]);
  });

  test('--print-config shows every flag by its name, secrets masked', () => {
    const r = cli(['--print-config', '--port', '9999', '--secret', 'a-long-secret-0123456789', '--nats_servers', 'nats://app:hunter2@localhost:4222'], { ANYCABLE_HEALTH_PATH: '/up' });
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    const printed = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(printed), FLAGS.map((f) => f.name));
    assert.equal(printed.port, 9999);
    assert.equal(printed.health_path, '/up');
    assert.equal(printed.secret, '******');
    assert.equal(printed.broadcast_key, '');
    assert.equal(printed.nats_servers, 'nats://******@localhost:4222');
    assert.deepEqual(printed.broadcast_adapter, ['http']);
    assert.ok(!r.stdout.includes('hunter2') && !r.stdout.includes('a-long-secret'));
  });

  test('a flag error is the config-error list, exit 2', () => {
    const r = cli(['--port', 'eighty', '--bogus']);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'cablecat: invalid configuration:\n  - unknown flag --bogus\n  - --port: "eighty" is not an integer\n');
  });
});

describe('start-up errors name what is wrong, in the config-error format', () => {
  test('a taken port names the --port flag; exit 1, no stack trace', async () => {
    const blocker = await takenPort();
    const port = portOf(blocker);
    try {
      const r = spawnSync(process.execPath, [CLI, '--port', String(port), '--host', '127.0.0.1', '--noauth', '--norpc'], { encoding: 'utf8', env: BASE_ENV, timeout: 20_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^cablecat: cannot start:\\n  - --port ${port}: cannot listen on 127\\.0\\.0\\.1:${port}: port ${port} is in use`));
      assertNoStackTrace(r.stderr);
    } finally {
      blocker.close();
    }
  });

  test('no loadable uWS binary: one line saying what failed for this Node and libc and what to do', () => {
    const r = cli(['--port', '0', '--noauth', '--norpc'], { FORBID_MODULES: UWS_PACKAGES });
    assert.equal(r.status, 1);
    const host = detectHost();
    const lines = r.stderr.split('\n');
    assert.equal(lines[0], 'cablecat: cannot start:');
    assert.ok(lines[1]?.startsWith(`  - no uWebSockets.js native binary loads on Node ${process.version} (ABI ${host.abi}) on ${host.platform}-${host.arch}`), lines[1]);
    assert.match(lines[1] ?? '', new RegExp(`\\(${expectedUws()}@[^:]+: HEAVY MODULE LOADED`));
    assert.match(lines[1] ?? '', new RegExp(`To fix: ${expectedUws()} is installed but its binary did not load: reinstall it`));
    assert.equal(lines.length, 3);
  });
});

describe('npm start', () => {
  test('npm start runs the built server without compiling first (no prestart, no tsc on the start path)', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(manifest.scripts.prestart, undefined);
    assert.doesNotMatch(manifest.scripts.start ?? '', /tsc|build/);
    assert.match(manifest.scripts.start ?? '', /node bin\/cablecat\.js/);
  });

  test('SIGTERM to the npm process stops the server and frees the port', async () => {
    const port = await freePort();
    const npm = spawn('npm', ['start', '--', '--port', String(port), '--host', '127.0.0.1', '--noauth', '--norpc', '--log_format', 'json'], {
      cwd: ROOT, env: BASE_ENV, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    npm.stdout.setEncoding('utf8');
    npm.stderr.setEncoding('utf8');
    const started = new Promise<void>((resolve, reject) => {
      npm.stdout.on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('"msg":"cablecat started"')) resolve();
      });
      npm.stderr.on('data', (chunk: string) => { out += chunk; });
      npm.once('exit', () => reject(new Error(`npm start exited before the server started:\n${out}`)));
    });
    const exited = once(npm, 'exit');
    // 'close' fires once every holder of the output pipes (npm, the shell, the server) has exited.
    const closed = once(npm, 'close');
    await started;
    assert.equal(await listening(port), true);
    const tree = descendants(npm.pid ?? 0);
    assert.ok(tree.length > 0, 'npm start runs the server as a child process');
    npm.kill('SIGTERM');
    await exited;
    // npm is gone; the server must be too. A guard instead of a hang when it was orphaned.
    const guard = setTimeout(() => { npm.stdout.destroy(); npm.stderr.destroy(); }, 10_000);
    await closed;
    clearTimeout(guard);
    const orphans = tree.filter(alive);
    for (const pid of orphans) process.kill(pid, 'SIGKILL');
    assert.deepEqual(orphans, [], `processes left running after npm exited:\n${out}`);
    assert.match(out, /"signal":"SIGTERM"/);
    assert.equal(await listening(port), false, `port ${port} still served after npm exited`);
  });
});

/** Every process below `pid` (npm runs the script through a shell, which may or may not exec node). */
function descendants(pid: number): number[] {
  const children = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).stdout
    .split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
  return children.flatMap((child) => [child, ...descendants(child)]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface LockEntry { readonly dev?: boolean; readonly [field: string]: unknown }
interface Manifest { version: string; bin: unknown; engines: unknown; dependencies: unknown; optionalDependencies: unknown }

/**
 * An empty app depending on the tarball. Its lock file lists our production dependencies at the versions of
 * our own lock, so `npm ci --offline` installs them from the npm cache that `npm install` just filled (an
 * install without a lock would need the registry's package metadata, which the cache does not hold).
 */
function writeConsumerProject(project: string, spec: string, integrity: string): void {
  const ours = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest;
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const manifest = { name: 'app', version: '1.0.0', private: true, dependencies: { cablecat: spec } };
  const packages: Record<string, unknown> = {
    '': manifest,
    'node_modules/cablecat': {
      version: ours.version, resolved: spec, integrity, bin: ours.bin, engines: ours.engines,
      dependencies: ours.dependencies, optionalDependencies: ours.optionalDependencies,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) if (path !== '' && !entry.dev) packages[path] = entry;
  writeFileSync(join(project, 'package.json'), JSON.stringify(manifest));
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify({ name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true, packages }));
}

describe('npm package', () => {
  test('npm install on a fresh clone leaves package-lock.json unchanged (package.json and the lock agree)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cablecat-lock-'));
    try {
      for (const name of ['package.json', 'package-lock.json']) writeFileSync(join(dir, name), readFileSync(join(ROOT, name)));
      // What `npm install` does to the lock, without installing: an out-of-date spec would be rewritten here.
      const r = spawnSync('npm', ['install', '--package-lock-only', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], {
        cwd: dir, encoding: 'utf8', env: { ...BASE_ENV, npm_config_loglevel: 'error' },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(join(dir, 'package-lock.json'), 'utf8'), readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the packed tarball installs offline with NODE_ENV=production and `npx cablecat` answers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cablecat-pack-'));
    try {
      const npmEnv = { ...BASE_ENV, npm_config_loglevel: 'error', npm_config_update_notifier: 'false' };
      // dist/ is fresh: `npm test` compiled it first. --ignore-scripts: no second build.
      const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', env: npmEnv });
      assert.equal(pack.status, 0, pack.stderr);
      const [info] = JSON.parse(pack.stdout) as Array<{ filename: string; integrity: string; files: Array<{ path: string }> }>;
      assert.ok(info);
      const files = info.files.map((f) => f.path);
      for (const needed of ['package.json', 'bin/cablecat.js', 'dist/src/cli/main.js', 'dist/src/server/uws.js', 'proto/anycable.proto']) {
        assert.ok(files.includes(needed), `${needed} missing from the tarball`);
      }
      assert.deepEqual(files.filter((f) => /^(src|test|bench|dist\/test|dist\/bench)\//.test(f) || f.endsWith('.ts')), []);

      const project = join(dir, 'app');
      mkdirSync(project);
      writeConsumerProject(project, `file:../${info.filename}`, info.integrity);
      const install = spawnSync('npm', ['ci', '--offline', '--no-audit', '--no-fund'], {
        cwd: project, encoding: 'utf8', env: { ...npmEnv, NODE_ENV: 'production' }, timeout: 240_000,
      });
      assert.equal(install.status, 0, install.stderr);
      const manifest = JSON.parse(readFileSync(join(project, 'node_modules/cablecat/package.json'), 'utf8')) as { version: string };
      assert.equal(manifest.version, VERSION);

      const help = spawnSync('npx', ['--offline', '--', 'cablecat', '--help'], { cwd: project, encoding: 'utf8', env: npmEnv });
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, /^Usage: cablecat \[options\]/);
      assertNoStackTrace(help.stderr);
      const version = spawnSync('npx', ['--offline', '--', 'cablecat', '--version'], { cwd: project, encoding: 'utf8', env: npmEnv });
      assert.equal(version.status, 0, version.stderr);
      assert.match(version.stdout, new RegExp(`^cablecat ${VERSION.replace(/\./g, '\\.')}\\n`));
      assert.match(version.stdout, new RegExp(`uWebSockets.js: ${expectedUws()}@`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Reads the image's ENV, ENTRYPOINT and HEALTHCHECK from the Dockerfile (no Docker engine on CI). */
function dockerfile(): { env: Record<string, string>; entrypoint: string[]; healthcheck: string[] } {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const runtime = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const line of runtime.split('\n').filter((l) => l.startsWith('ENV '))) {
    for (const pair of line.slice(4).trim().split(/\s+/)) {
      const [key, value] = pair.split('=');
      if (key && value !== undefined) env[key] = value;
    }
  }
  const json = (prefix: RegExp): string[] => JSON.parse(prefix.exec(runtime)?.[1] ?? '[]') as string[];
  return { env, entrypoint: json(/^ENTRYPOINT (\[.*\])$/m), healthcheck: json(/^HEALTHCHECK .*CMD (\[.*\])$/m) };
}

function runNode(argv: readonly string[], env: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  assert.equal(argv[0], 'node');
  return spawnSync(process.execPath, argv.slice(1), { cwd: ROOT, encoding: 'utf8', env: { ...BASE_ENV, ...env }, timeout: 20_000 });
}

/** Like runNode, without blocking this process (for a server running in it). */
async function runNodeAsync(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string }> {
  const child = spawn(process.execPath, argv.slice(1), { cwd: ROOT, env: { ...BASE_ENV, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
  const [status] = (await once(child, 'close')) as [number | null];
  return { status, stdout };
}

describe('Docker image (run the way its Dockerfile says)', () => {
  test('PORT from the platform sets the port (the image does not pin ANYCABLE_PORT); HEALTHCHECK follows it and --health_path', async () => {
    const image = dockerfile();
    assert.equal(image.env.ANYCABLE_PORT, undefined, 'ANYCABLE_PORT in the image would override -e PORT=');
    assert.equal(image.env.NODE_ENV, 'production');
    const port = await freePort();
    const env = {
      ...image.env, PORT: String(port), ANYCABLE_HEALTH_PATH: '/up', ANYCABLE_SECRET: 'docker-test-secret-0123456789abcdef',
      ANYCABLE_HTTP_BROADCAST_PORT: '0', ANYCABLE_NORPC: 'true',
    };
    const [command, ...args] = image.entrypoint;
    assert.equal(command, 'node');
    const server = spawn(process.execPath, args, { cwd: ROOT, env: { ...BASE_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    server.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    server.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
    const exited = once(server, 'exit');
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout.on('data', () => { if (out.includes('cablecat started')) resolve(); });
        server.once('exit', () => reject(new Error(`server exited:\n${out}`)));
      });
      assert.match(out, new RegExp(`address=http://0\\.0\\.0\\.0:${port}`));
      const healthy = runNode(image.healthcheck, env);
      assert.equal(healthy.stdout, `healthy: http://127.0.0.1:${port}/up answered 200\n`);
      assert.equal(healthy.status, 0);
      // The same check against the wrong path fails: it really follows --health_path.
      const wrongPath = runNode([...image.healthcheck, '--port', String(port), '--health_path', '/nope', '--host', '127.0.0.1'], env);
      assert.equal(wrongPath.status, 1);
      assert.equal(wrongPath.stdout, `unhealthy: http://127.0.0.1:${port}/nope answered 404\n`);
    } finally {
      server.kill('SIGTERM');
      await exited;
    }
    const down = runNode(image.healthcheck, env);
    assert.equal(down.status, 1);
    assert.equal(down.stdout, `unhealthy: http://127.0.0.1:${port}/up: connect ECONNREFUSED 127.0.0.1:${port}\n`);
  });

  test('HEALTHCHECK speaks TLS when the server does (self-signed is fine: it checks liveness)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cablecat-hc-tls-'));
    try {
      spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=example.test'], { stdio: 'ignore' });
      const tls = ['--ssl_cert', join(dir, 'cert.pem'), '--ssl_key', join(dir, 'key.pem')];
      await withServer(['--noauth', '--norpc', ...tls], async (server) => {
        const r = await runNodeAsync(['node', 'bin/cablecat.js', 'healthcheck', '--host', '127.0.0.1', '--port', String(server.port), ...tls], {});
        assert.equal(r.stdout, `healthy: https://127.0.0.1:${server.port}/health answered 200\n`);
        assert.equal(r.status, 0);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the check finds the server flags on PID 1, or on a child of an init at PID 1', () => {
    const proc = mkdtempSync(join(tmpdir(), 'cablecat-proc-'));
    const fake = (pid: number, ppid: number, argv: readonly string[]): void => {
      mkdirSync(join(proc, String(pid)));
      writeFileSync(join(proc, String(pid), 'cmdline'), `${argv.join('\0')}\0`);
      writeFileSync(join(proc, String(pid), 'stat'), `${pid} (node x) S ${ppid} 1 1 0 -1`);
    };
    try {
      fake(1, 0, ['node', 'bin/cablecat.js', '--port', '9000', '--health_path', '/up']);
      fake(30, 0, ['node', 'bin/cablecat.js', 'healthcheck']);
      assert.deepEqual(serverArgs(proc), ['--port', '9000', '--health_path', '/up']);
      rmSync(join(proc, '1'), { recursive: true });
      fake(1, 0, ['/sbin/docker-init', '--', 'node', '/app/bin/cablecat.js']);
      // docker-init's own argv names the CLI with nothing after it: that is PID 1's (empty) flags too.
      assert.deepEqual(serverArgs(proc), []);
      rmSync(join(proc, '1'), { recursive: true });
      fake(1, 0, ['/sbin/tini', '-s', '--', 'sh', '-c', 'node bin/cablecat.js --port 1']);
      fake(7, 1, ['node', '/app/bin/cablecat.js', '--port', '9001']);
      fake(8, 7, ['node', '/app/bin/cablecat.js', '--port', '9002']);
      assert.deepEqual(serverArgs(proc), ['--port', '9001']);
      // PID 1 that is no container init (a host's or VM's): its children are other people's servers.
      rmSync(join(proc, '1'), { recursive: true });
      fake(1, 0, ['/process_api', '--firecracker-init']);
      assert.equal(serverArgs(proc), null);
      assert.equal(serverArgs(join(proc, 'missing')), null);
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });
});
