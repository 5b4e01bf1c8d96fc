import { loadConfig, helpText, printableConfig } from '../config/load.js';
import { ConfigError, errorMessage } from '../errors.js';
import { createLogger } from '../logging/logger.js';
import { createCablecat } from '../app/compose.js';
import { hashPassword } from '../auth/users.js';
import { mintToken } from '../auth/jwt.js';
import { redactUrl } from '../broker/redis-connection.js';
import { VERSION } from '../version.js';
import { checkSecrets } from './secure-start.js';
import type { Config } from '../config/config.js';

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
  if (argv[0] === 'hash-password') {
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
    process.stdout.write(`${JSON.stringify(printableConfig(request.config), null, 2)}\n`);
    return;
  }

  const production = process.env.NODE_ENV === 'production';
  const verdict = checkSecrets(request.config, production);
  if (verdict.kind === 'refuse') {
    process.stderr.write(`cablecat: refusing to start in production:\n${verdict.problems.map((p) => `  - ${p}`).join('\n')}\n`);
    process.exit(EXIT_CONFIG);
  }
  const config = verdict.config;
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  for (const warning of verdict.warnings) logger.warn(warning);
  if (verdict.kind === 'generated') {
    const token = await mintToken(config.jwtSecrets[0] ?? '', JSON.stringify({ user_id: 'test' }), 24 * 3600);
    logger.warn('!!! NO SECRET SET: generated a random one for this run only. Set ANYCABLE_SECRET before going to production !!!');
    process.stdout.write(`\nA token for a test user (valid 24 h): ${token}\nConnect with: ws://${config.host}:${config.port}${config.paths[0] ?? '/cable'}?${config.jwtParam}=${token}\n\n`);
  }

  let cablecat;
  try {
    cablecat = await createCablecat(config, logger);
    await cablecat.start();
  } catch (err) {
    // Files named in the config (users, TLS) are read here: their problems read like any config error.
    if (err instanceof ConfigError) {
      process.stderr.write(`cablecat: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    logger.fatal({ err: errorMessage(err) }, 'cannot start');
    process.exit(err instanceof ConfigError ? EXIT_CONFIG : 1);
  }
  logger.info({
    version: VERSION,
    address: `${config.sslCert ? 'https' : 'http'}://${config.host}:${cablecat.port}`,
    paths: config.paths,
    auth: authModes(config),
    broadcast: config.broadcastAdapters,
    pubsub: config.pubsub,
    rpc: config.norpc ? 'disabled' : redactUrl(config.rpcHost),
  }, 'cablecat started');

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, timeout_s: config.shutdownTimeoutMs / 1000 }, 'shutting down');
    const hardStop = setTimeout(() => {
      logger.warn('shutdown timeout reached, exiting');
      process.exit(0);
    }, config.shutdownTimeoutMs + 1000);
    hardStop.unref();
    cablecat.shutdown().then(
      () => { logger.info('shutdown complete'); process.exit(0); },
      (err: unknown) => { logger.error({ err: errorMessage(err) }, 'shutdown failed'); process.exit(1); },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`cablecat: ${errorMessage(err)}\n`);
  process.exit(1);
});
