import { pino, type Logger, type DestinationStream } from 'pino';
import { maskFields, maskUrlsIn } from './mask.js';

export type { Logger };

/** Paths pino blanks out at every level, so tokens, keys and cookies never reach a log. */
export const REDACT_PATHS = [
  'token', 'jwt', 'secret', 'password', 'key', 'apiKey', 'authorization', 'cookie',
  '*.token', '*.jwt', '*.secret', '*.password', '*.authorization', '*.cookie', '*.apiKey',
  'headers.cookie', 'headers.authorization', 'headers["x-jid"]', 'headers["sec-websocket-protocol"]',
  'req.headers.cookie', 'req.headers.authorization',
];

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const OMIT_IN_TEXT = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/** Turns pino's JSON lines into `time LEVEL msg k=v …` for humans. */
function textStream(out: NodeJS.WritableStream): DestinationStream {
  return {
    write(line: string): void {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      const time = new Date(typeof rec.time === 'number' ? rec.time : Date.now()).toISOString();
      const level = LEVEL_NAMES[Number(rec.level)] ?? String(rec.level);
      const fields = Object.entries(rec)
        .filter(([k]) => !OMIT_IN_TEXT.has(k))
        .map(([k, val]) => `${k}=${typeof val === 'string' ? (/[\s"=]/.test(val) ? JSON.stringify(val) : val) : JSON.stringify(val)}`)
        .join(' ');
      out.write(`${time} ${level.padEnd(5)} ${String(rec.msg ?? '')}${fields ? ' ' + fields : ''}\n`);
    },
  };
}

export interface LoggerOptions {
  readonly level: string;
  readonly format: 'text' | 'json';
  /** Defaults to stdout; tests pass a capture stream. */
  readonly destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const out = opts.destination ?? process.stdout;
  const dest: DestinationStream = opts.format === 'json' ? { write: (s: string) => { out.write(s); } } : textStream(out);
  return pino({
    level: opts.level,
    base: null,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    // URL credentials (redis://:pw@…, nats://user:pw@…) are masked in every message and field.
    hooks: {
      logMethod(args, method) {
        const masked = args.map((a: unknown) => (typeof a === 'string' ? maskUrlsIn(a) : typeof a === 'object' && a !== null ? maskFields(a) : a));
        method.apply(this, masked as Parameters<typeof method>);
      },
    },
  }, dest);
}

/** Keeps long payloads out of log lines. */
export function compact(value: string, max = 100): string {
  return value.length <= max ? value : `${value.slice(0, max)}…(${value.length} chars)`;
}
