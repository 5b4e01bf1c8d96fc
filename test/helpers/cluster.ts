import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging/logger.js';
import { ClusterPrimary } from '../../src/cluster/primary.js';
import { loadUws } from '../../src/server/uws.js';
import { LogCapture } from './server.js';

export interface TestCluster {
  readonly primary: ClusterPrimary;
  readonly port: number;
  /** ws://…/cable on the shared main port. */
  readonly url: string;
  readonly http: string;
  /** Base URL of the primary's node:http API listener ('' when there is none). */
  readonly api: string;
  /** The primary's and the workers' log lines (JSON; worker lines carry `worker`). */
  readonly logs: LogCapture;
  stop(): Promise<void>;
}

/** Starts a real node of `--workers 2` (unless `args` says otherwise) in this process, on free ports. */
export async function startCluster(args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<TestCluster> {
  const { config } = loadConfig(['--port', '0', '--http_broadcast_port', '0', '--host', '127.0.0.1', '--workers', '2', '--log_level', 'info', '--log_format', 'json', ...args], env);
  const logs = new LogCapture();
  const logger = createLogger({ level: config.logLevel, format: 'json', destination: logs });
  const primary = new ClusterPrimary(config, logger, loadUws(), logs);
  await primary.start();
  let stopped = false;
  return {
    primary,
    port: primary.port,
    url: `ws://127.0.0.1:${primary.port}${config.paths[0] ?? '/cable'}`,
    http: `http://127.0.0.1:${primary.port}`,
    api: primary.apiPort ? `http://127.0.0.1:${primary.apiPort}` : '',
    logs,
    async stop() {
      if (stopped) return;
      stopped = true;
      await primary.shutdown();
    },
  };
}

/** Runs `body` against a cluster started with `args`, and always stops it. */
export async function withCluster<T>(args: readonly string[], body: (cluster: TestCluster) => Promise<T>): Promise<T> {
  const cluster = await startCluster(args);
  try {
    return await body(cluster);
  } finally {
    await cluster.stop();
  }
}

/** Connections open on each worker, by worker index. */
export async function connectionsPerWorker(primary: ClusterPrimary): Promise<number[]> {
  const snapshots = await primary.workerMetrics();
  return [...snapshots.entries()].sort(([a], [b]) => a - b).map(([, s]) => s.gauges.clients_num);
}
