import type { Config } from '../config/config.js';
import { CablecatError, ConfigError, errorMessage } from '../errors.js';
import { maskUrlsIn } from '../logging/mask.js';

/**
 * Start-up failures printed the way config errors are: one list, each line naming the flag, file or port
 * involved. Files (TLS, users) are checked where they are read and arrive here as ConfigErrors.
 */

/** `metricsPort` → `metrics_port`: config fields are the flag names in camelCase. */
function flagOf(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The flag(s) whose port is `port` (the main port, the metrics port, any other listener's port). */
function portFlags(config: Config, port: number): string[] {
  return Object.entries(config)
    .filter(([field, value]) => /Port$|^port$/.test(field) && value === port)
    .map(([field]) => `--${flagOf(field)} ${port}`);
}

export interface StartFailure {
  /** `invalid configuration` for flag/file problems (exit 2), `cannot start` for the rest (exit 1). */
  readonly kind: 'config' | 'runtime';
  readonly problems: readonly string[];
}

/** Turns an error thrown while starting into problems that name the flag, file or port involved. */
export function describeStartFailure(err: unknown, config: Config): StartFailure {
  if (err instanceof ConfigError) return { kind: 'config', problems: err.problems };
  const errno = err as NodeJS.ErrnoException & { port?: unknown };
  // uWS listen failures (CablecatError) say "on host:port"; node:http ones carry the port.
  const port = err instanceof CablecatError && err.code === 'CABLECAT_ERR_LISTEN'
    ? Number(/ on \S+:(\d+)/.exec(err.message)?.[1] ?? NaN)
    : typeof errno.port === 'number' ? errno.port : NaN;
  if (!Number.isNaN(port)) {
    const flags = portFlags(config, port);
    return { kind: 'runtime', problems: [`${flags.length > 0 ? `${flags.join(' / ')}: ` : ''}${errorMessage(err)}`] };
  }
  if (typeof errno.code === 'string' && typeof errno.path === 'string') {
    return { kind: 'config', problems: [`cannot read ${errno.path} (${errno.code})`] };
  }
  return { kind: 'runtime', problems: [errorMessage(err)] };
}

/** The one format every start-up problem is printed in (the same as config errors). */
export function formatStartFailure(failure: StartFailure): string {
  const head = failure.kind === 'config' ? 'invalid configuration' : 'cannot start';
  return `cablecat: ${head}:\n${failure.problems.map((p) => `  - ${maskUrlsIn(p)}`).join('\n')}\n`;
}
