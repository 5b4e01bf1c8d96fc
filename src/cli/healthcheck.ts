import { readdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { loadConfig } from '../config/load.js';
import { errorMessage } from '../errors.js';

/**
 * `cablecat healthcheck`: GET the health path of the running server, as configured. For Docker's HEALTHCHECK,
 * which runs beside the server with the container's env but not its command line: the flags are taken
 * from the server's own process (found in /proc) unless given here, so --port, --health_path and TLS set
 * by `docker run image --flag` or by ANYCABLE_ variables and PORT are all followed.
 */

const TIMEOUT_MS = 2500;

/** Whether an argv entry is the cablecat CLI (the bin launcher, the compiled main, or an npx/npm shim). */
function isCablecatEntry(arg: string): boolean {
  return /(^|\/)bin\/cablecat\.js$|(^|\/)dist\/src\/cli\/main\.js$|(^|\/)cablecat$/.test(arg);
}

function readArgv(procRoot: string, pid: string): string[] {
  try {
    return readFileSync(`${procRoot}/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  } catch {
    return []; // gone meanwhile, or not ours to read
  }
}

function parentOf(procRoot: string, pid: string): string {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so count from the last ')'.
    const stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '';
  } catch {
    return '';
  }
}

/** The inits `docker run --init` and images put at PID 1 before the real command. */
function isContainerInit(command: string): boolean {
  return /(^|\/)(docker-init|tini|tini-static|dumb-init|catatonit)$/.test(command);
}

/**
 * Flags of the cablecat server of this container: PID 1 (the image's ENTRYPOINT), or a child of PID 1 when
 * an init runs first (`docker run --init`). Null when there is none (outside a container: env only).
 */
export function serverArgs(procRoot = '/proc'): string[] | null {
  let pids: string[];
  try {
    pids = readdirSync(procRoot).filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  // Children of PID 1 count only under a container init: elsewhere (a host, a VM) they are anybody's servers.
  const underInit = isContainerInit(readArgv(procRoot, '1')[0] ?? '');
  const children = underInit ? pids.filter((pid) => pid !== '1' && parentOf(procRoot, pid) === '1').sort((a, b) => Number(a) - Number(b)) : [];
  const candidates = ['1', ...children];
  for (const pid of candidates) {
    const argv = readArgv(procRoot, pid);
    const at = argv.findIndex(isCablecatEntry);
    if (at === -1) continue;
    const args = argv.slice(at + 1);
    // A server has flags only; a subcommand (this check, hash-password) or --help is not the server.
    if (args[0] !== undefined && !args[0].startsWith('-')) continue;
    return args;
  }
  return null;
}

/** Where the health endpoint of a server listening on `host` is reached from this machine. */
function localHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function get(url: URL, tls: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    // Liveness, not certificate validity: a self-signed or name-mismatched certificate is still this server.
    const req = (tls ? httpsRequest : httpRequest)(url, { method: 'GET', timeout: TIMEOUT_MS, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Exit code for Docker: 0 healthy, 1 not. Prints one line saying what was checked. */
export async function healthcheck(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = argv.length > 0 ? [...argv] : serverArgs() ?? [];
  let url: URL;
  let tls: boolean;
  try {
    const { config } = loadConfig(args, env);
    if (config.port === 0) {
      process.stdout.write('unhealthy: --port 0 (a random port) cannot be checked: give the port\n');
      return 1;
    }
    tls = config.sslCert !== '';
    url = new URL(`${tls ? 'https' : 'http'}://${localHost(config.host)}:${config.port}${config.healthPath}`);
  } catch (err) {
    process.stdout.write(`unhealthy: ${errorMessage(err)}\n`);
    return 1;
  }
  try {
    const status = await get(url, tls);
    process.stdout.write(`${status === 200 ? 'healthy' : 'unhealthy'}: ${url.href} answered ${status}\n`);
    return status === 200 ? 0 : 1;
  } catch (err) {
    process.stdout.write(`unhealthy: ${url.href}: ${errorMessage(err)}\n`);
    return 1;
  }
}
