// The node's metrics across worker threads: a worker that dies in the middle of a scrape must not
// make a counter go back (Prometheus would read a reset).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics, GAUGE_NAMES, type GaugeName } from '../../src/metrics/metrics.js';
import { ClusterMetrics } from '../../src/cluster/cluster-metrics.js';
import { MetricsCollector } from '../../src/cluster/metrics-collector.js';
import type { MetricsSnapshot } from '../../src/cluster/messages.js';

function snapshot(broadcasts: number, clients: number): MetricsSnapshot {
  const counters = { ...new Metrics().counters, broadcast_msg_total: broadcasts };
  const gauges = Object.fromEntries(GAUGE_NAMES.map((name) => [name, name === 'clients_num' ? clients : 0])) as Record<GaugeName, number>;
  return { counters, gauges };
}

test('a worker dying between its answer and the end of a scrape: its counters stay, never counted twice, never going back', async () => {
  const asked: Array<[number, number]> = [];
  const collector = new MetricsCollector((worker, id) => asked.push([worker, id]));
  const node = new ClusterMetrics(new Metrics(), () => collector.collect([0, 1]));

  let scrape = node.refresh();
  for (const [worker, id] of asked.splice(0)) collector.answered(worker, id, snapshot(worker === 0 ? 10 : 5, 2));
  await scrape;
  assert.equal(node.counters.broadcast_msg_total, 15);
  assert.equal(node.gauge('clients_num'), 4);

  // Worker 0 answers the next scrape with 30, then dies before worker 1 answers.
  scrape = node.refresh();
  const [first, second] = asked.splice(0);
  collector.answered(first![0], first![1], snapshot(30, 2));
  collector.workerGone(0);
  node.retire(0);
  collector.answered(second![0], second![1], snapshot(5, 2));
  await scrape;
  const afterDeath = node.counters.broadcast_msg_total;
  assert.equal(afterDeath, 15, 'the dead worker\'s last published count (10) stays, its unpublished answer is dropped');
  assert.equal(node.gauge('clients_num'), 2, 'its connections are gone');

  // Its replacement starts from zero: the node's counter does not go back.
  scrape = node.refresh();
  for (const [worker, id] of asked.splice(0)) collector.answered(worker, id, snapshot(worker === 0 ? 1 : 6, 1));
  await scrape;
  assert.equal(node.counters.broadcast_msg_total, 10 + 1 + 6);
  assert.ok(node.counters.broadcast_msg_total >= afterDeath);
});
