import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load.js';
import { createLogger, type Logger } from '../../src/logging/logger.js';
import type { Config } from '../../src/config/config.js';
import { createCablecat, type Cablecat } from '../../src/app/compose.js';

export const TEST_SECRET = 'test-secret-0123456789abcdef';

/** Captures log lines (JSON) so tests can assert on them. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
  records(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface TestServer {
  readonly app: Cablecat;
  readonly port: number;
  readonly url: string;
  readonly http: string;
  /** Base URL of the node:http API listener ('' when there is none). */
  readonly api: string;
  readonly logs: LogCapture;
  stop(): Promise<void>;
}

/** A test server's config (free ports on 127.0.0.1, JSON logs at `level`, then `args`) and a logger into a capture. */
export function testSetup(args: readonly string[], env: NodeJS.ProcessEnv, level = 'debug'): { config: Config; logs: LogCapture; logger: Logger } {
  const { config } = loadConfig(['--port', '0', '--http_broadcast_port', '0', '--host', '127.0.0.1', '--log_level', level, '--log_format', 'json', ...args], env);
  const logs = new LogCapture();
  return { config, logs, logger: createLogger({ level: config.logLevel, format: 'json', destination: logs }) };
}

/** Starts the real server in this process on free ports (main and HTTP API) with the given flags. */
export async function startServer(args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<TestServer> {
  const { config, logs, logger } = testSetup(args, env);
  const app = await createCablecat(config, logger);
  await app.start();
  return { app, ...addresses(config, app, logs) };
}

/** Where a started server (one thread or a --workers node) is reached, and a stop that runs once. */
export function addresses(config: Config, server: { port: number; apiPort: number; shutdown(): Promise<void> }, logs: LogCapture): Omit<TestServer, 'app'> {
  let stopped = false;
  return {
    port: server.port,
    url: `ws://127.0.0.1:${server.port}${config.paths[0] ?? '/cable'}`,
    http: `http://127.0.0.1:${server.port}`,
    api: server.apiPort ? `http://127.0.0.1:${server.apiPort}` : '',
    logs,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.shutdown();
    },
  };
}

/** Runs `body` against a server started with `args`, and always stops it. */
export async function withServer<T>(args: readonly string[], body: (server: TestServer) => Promise<T>): Promise<T> {
  const server = await startServer(args);
  try {
    return await body(server);
  } finally {
    await server.stop();
  }
}
