import assert from 'node:assert/strict';
import { connectionsPerWorker, type TestCluster } from './cluster.js';
import { RawClient } from './ws-client.js';

/** A client that got its welcome, and the worker that took its connection. */
export interface PlacedClient {
  readonly client: RawClient;
  readonly worker: number;
  readonly sid: string;
}

/**
 * Runs `connect` (which opens one connection and waits for its welcome) and finds out which worker
 * took it: the one whose clients_num went up by one. Call it sequentially: two connects in flight at
 * once could not be told apart.
 */
export async function placed<T>(cluster: TestCluster, connect: () => Promise<T>): Promise<T & { readonly worker: number }> {
  const before = await connectionsPerWorker(cluster.primary);
  const made = await connect();
  const after = await connectionsPerWorker(cluster.primary);
  const grew = after.map((n, i) => n - (before[i] ?? 0));
  const worker = grew.indexOf(1);
  assert.ok(worker >= 0 && grew.every((d, i) => d === (i === worker ? 1 : 0)), `one worker took the connection: ${JSON.stringify({ before, after })}`);
  return { ...made, worker };
}

/** Connects one raw client, checks its welcome, and finds out which worker took it. */
export async function connectPlaced(cluster: TestCluster, query = ''): Promise<PlacedClient> {
  return placed(cluster, async () => {
    const client = await RawClient.connect(`${cluster.url}${query}`);
    const welcome = (await client.next()) as { type?: unknown; sid?: unknown };
    assert.equal(typeof welcome.sid, 'string');
    const sid = welcome.sid as string;
    assert.ok(sid !== '');
    assert.deepEqual(welcome, { type: 'welcome', sid });
    return { client, sid };
  });
}

/**
 * Connects clients one by one until every worker holds at least `perWorker` of them (the kernel picks
 * the worker). `max` bounds the attempts; all the clients connected are returned, in order.
 */
export async function connectSpread(cluster: TestCluster, perWorker: number, query = '', max = 60): Promise<PlacedClient[]> {
  const workers = (await connectionsPerWorker(cluster.primary)).length;
  const placed: PlacedClient[] = [];
  const enough = (): boolean => Array.from({ length: workers }, (_, w) => placed.filter((p) => p.worker === w).length).every((n) => n >= perWorker);
  while (!enough()) {
    assert.ok(placed.length < max, `after ${max} connections some worker still has fewer than ${perWorker}`);
    placed.push(await connectPlaced(cluster, query));
  }
  return placed;
}
