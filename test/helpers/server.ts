import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging/logger.js';
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

/** Starts the real server in this process on free ports (main and HTTP API) with the given flags. */
export async function startServer(args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<TestServer> {
  const { config } = loadConfig(['--port', '0', '--http_broadcast_port', '0', '--host', '127.0.0.1', '--log_level', 'debug', '--log_format', 'json', ...args], env);
  const logs = new LogCapture();
  const logger = createLogger({ level: config.logLevel, format: 'json', destination: logs });
  const app = await createCablecat(config, logger);
  await app.start();
  let stopped = false;
  return {
    app,
    port: app.port,
    url: `ws://127.0.0.1:${app.port}${config.paths[0] ?? '/cable'}`,
    http: `http://127.0.0.1:${app.port}`,
    api: app.apiPort ? `http://127.0.0.1:${app.apiPort}` : '',
    logs,
    async stop() {
      if (stopped) return;
      stopped = true;
      await app.shutdown();
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
