// Only light modules are imported up front: uWS, gRPC, Redis, NATS and pino load (dynamic import) when the
// server actually starts, so --help, --version and config errors answer at once, even without a uWS binary.
// First of all: the young-generation policy must be set before anything allocates.
import '../runtime/young-generation.js';
import { loadConfig, helpText, printableConfig } from '../config/load.js';
import { ConfigError, errorMessage } from '../errors.js';
import { maskUrlsIn } from '../logging/mask.js';
import { VERSION } from '../version.js';
import { checkSecrets } from './secure-start.js';
import { describeStartFailure, formatStartFailure } from './start-errors.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import type { Uws } from '../server/uws.js';

const EXIT_CONFIG = 2;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function authModes(config: Config): string[] {
  const modes: string[] = [];
  if (config.jwtSecrets.length > 0) modes.push(config.enforceJwt ? 'jwt(enforced)' : 'jwt');
  if (config.wsApiKey) modes.push('ws_key');
  if (config.noauth) modes.push('noauth');
  if (!config.norpc) modes.push('rpc');
  return modes;
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes('--version') || argv.includes('-v')) {
    const { versionReport } = await import('./version-report.js');
    process.stdout.write(`${versionReport()}\n`);
    return;
  }
  if (argv[0] === 'healthcheck') {
    const { healthcheck } = await import('./healthcheck.js');
    process.exit(await healthcheck(argv.slice(1), process.env));
  }
  if (argv[0] === 'hash-password') {
    const { hashPassword } = await import('../auth/users.js');
    const password = await readStdin();
    if (password === '') {
      process.stderr.write('hash-password: give the password on stdin\n');
      process.exit(EXIT_CONFIG);
    }
    process.stdout.write(`${await hashPassword(password)}\n`);
    return;
  }

  let request;
  try {
    request = loadConfig(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cablecat: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
  if (request.help) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  if (request.printConfig) {
    process.stdout.write(`${JSON.stringify(printableConfig(request.flagValues), null, 2)}\n`);
    return;
  }

  const production = process.env.NODE_ENV === 'production';
  const verdict = checkSecrets(request.config, production);
  if (verdict.kind === 'refuse') {
    process.stderr.write(`cablecat: refusing to start in production:\n${verdict.problems.map((p) => `  - ${p}`).join('\n')}\n`);
    process.exit(EXIT_CONFIG);
  }
  const config = verdict.config;
  const { createLogger } = await import('../logging/logger.js');
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  for (const warning of [...request.warnings, ...verdict.warnings]) logger.warn(warning);
  if (verdict.kind === 'generated') {
    logger.warn('!!! NO SECRET SET: generated a random one for this run only. Set ANYCABLE_SECRET before going to production !!!');
  }

  let server: RunningServer;
  let uwsId;
  try {
    const { loadUwsPackage } = await import('../server/uws.js');
    const uws = loadUwsPackage();
    uwsId = uws.id;
    server = await startServer(config, logger, uws.uws);
  } catch (err) {
    const failure = describeStartFailure(err, config);
    logger.debug({ err: errorMessage(err) }, 'start-up failed');
    process.stderr.write(formatStartFailure(failure));
    process.exit(failure.kind === 'config' ? EXIT_CONFIG : 1);
  }
  const cablecat = server;
  // Signals are handled from the moment the server listens: a SIGTERM during the start-up log must still shut down gracefully.
  let stopping = false;
  // Worker threads must close their sockets before the process exits, even in a hurry.
  const exitNow = (code: number): void => {
    void cablecat.closeNow().finally(() => process.exit(code));
  };
  closeBeforeExit = () => cablecat.closeNow();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal, exiting now');
      exitNow(1);
      return;
    }
    stopping = true;
    logger.info({ signal, timeout_s: config.shutdownTimeoutMs / 1000 }, 'shutting down');
    const hardStop = setTimeout(() => {
      logger.warn('shutdown timeout reached, exiting');
      exitNow(0);
    }, config.shutdownTimeoutMs + 1000);
    hardStop.unref();
    cablecat.shutdown().then(
      () => { logger.info('shutdown complete'); process.exit(0); },
      (err: unknown) => { logger.error({ err: errorMessage(err) }, 'shutdown failed'); exitNow(1); },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  if (config.workers > 1) {
    // Dying on a bug here would take the workers down with a raw abort (open uWS handles): close them first.
    process.on('uncaughtException', (err) => {
      logger.fatal({ err: errorMessage(err), stack: err.stack }, 'uncaught exception in the primary thread, exiting');
      exitNow(1);
    });
  }
  logger.info({
    version: VERSION,
    uws: uwsId,
    address: `${config.sslCert ? 'https' : 'http'}://${config.host}:${cablecat.port}`,
    workers: config.workers,
    paths: config.paths,
    sse: config.sse ? config.ssePath : 'off',
    http_api: cablecat.apiPort ? `http://${config.host}:${cablecat.apiPort}` : 'off',
    auth: authModes(config),
    broadcast: config.broadcastAdapters,
    pubsub: config.pubsub,
    rpc: config.norpc ? 'disabled' : maskUrlsIn(config.rpcHost),
  }, 'cablecat started');
  if (verdict.kind === 'generated') {
    const { quickStartText, quickStartValues } = await import('./quick-start.js');
    process.stdout.write(quickStartText(await quickStartValues(config, { main: cablecat.port, api: cablecat.apiPort }), config.jwtParam));
  }

}

/** What the CLI runs: one thread's server, or a node of worker threads (--workers > 1). */
interface RunningServer {
  readonly port: number;
  readonly apiPort: number;
  shutdown(): Promise<void>;
  closeNow(): Promise<void>;
}

async function startServer(config: Config, logger: Logger, uws: Uws): Promise<RunningServer> {
  if (config.workers > 1) {
    const { ClusterPrimary } = await import('../cluster/primary.js');
    const primary = new ClusterPrimary(config, logger, uws);
    await primary.start();
    return { port: primary.port, apiPort: primary.apiPort, shutdown: () => primary.shutdown(), closeNow: () => primary.closeWorkersNow() };
  }
  const { createCablecat } = await import('../app/compose.js');
  const single = await createCablecat(config, logger, uws);
  await single.start();
  return { port: single.port, apiPort: single.apiPort, shutdown: () => single.shutdown(), closeNow: async () => single.closeNow() };
}

/** Set once a server runs: worker threads must close their sockets before the process exits (Node aborts otherwise). */
let closeBeforeExit: () => Promise<void> = async () => {};

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`cablecat: ${maskUrlsIn(errorMessage(err))}\n`);
  void closeBeforeExit().finally(() => process.exit(1));
});
