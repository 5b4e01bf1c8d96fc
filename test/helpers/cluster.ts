import { ClusterPrimary } from '../../src/cluster/primary.js';
import { loadUws } from '../../src/server/uws.js';
import { addresses, testSetup, type TestServer } from './server.js';

/** A --workers node: reached like a TestServer (its logs carry the workers' lines too, with `worker`). */
export type TestCluster = Omit<TestServer, 'app'> & { readonly primary: ClusterPrimary };

/** Starts a real node of `--workers 2` (unless `args` says otherwise) in this process, on free ports. */
export async function startCluster(args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<TestCluster> {
  const { config, logs, logger } = testSetup(['--workers', '2', ...args], env, 'info');
  const primary = new ClusterPrimary(config, logger, loadUws(), { logOutput: logs, portCheckMs: 200 });
  await primary.start();
  return { primary, ...addresses(config, primary, logs) };
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
