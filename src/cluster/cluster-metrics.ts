import { COUNTER_NAMES, type Counters, type GaugeName, type Metrics, type MetricsReader } from '../metrics/metrics.js';
import type { MetricsSnapshot } from './messages.js';

/** Gauges only the primary knows for the node as a whole (workers' own would count a stream or a user once per worker). */
const NODE_GAUGES: ReadonlySet<GaugeName> = new Set<GaugeName>(['broadcast_streams_num', 'broker_connected', 'clients_uniq_num']);

/**
 * One node's metrics across its threads: the primary's own (broadcasts, broker, HTTP API) plus the
 * workers' snapshots, as of the last refresh. A dead worker's counters stay counted (Prometheus
 * would read a drop as a reset); its gauges go.
 */
export class ClusterMetrics implements MetricsReader {
  private readonly latest = new Map<number, MetricsSnapshot>();
  private readonly retired: Counters;

  constructor(private readonly own: Metrics, private readonly collect: () => Promise<ReadonlyMap<number, MetricsSnapshot>>) {
    this.retired = { ...own.counters };
    for (const name of COUNTER_NAMES) this.retired[name] = 0;
  }

  get counters(): Readonly<Counters> {
    const sum = { ...this.own.counters };
    for (const name of COUNTER_NAMES) {
      let value = sum[name] + this.retired[name];
      for (const snapshot of this.latest.values()) value += snapshot.counters[name];
      sum[name] = value;
    }
    return sum;
  }

  gauge(name: GaugeName): number {
    let value = this.own.gauge(name);
    if (NODE_GAUGES.has(name)) return value;
    for (const snapshot of this.latest.values()) value += snapshot.gauges[name];
    return value;
  }

  async refresh(): Promise<void> {
    const fresh = await this.collect();
    for (const [index, snapshot] of fresh) this.latest.set(index, snapshot);
  }

  /** Worker `index` is gone: its counters so far stay in the sums. */
  retire(index: number): void {
    const last = this.latest.get(index);
    if (!last) return;
    for (const name of COUNTER_NAMES) this.retired[name] += last.counters[name];
    this.latest.delete(index);
  }
}
