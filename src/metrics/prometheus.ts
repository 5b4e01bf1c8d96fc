import { Registry, Counter, Gauge, collectDefaultMetrics } from 'prom-client';
import { COUNTER_NAMES, GAUGE_NAMES, METRIC_HELP, type MetricsReader } from './metrics.js';

/** A prom-client registry whose metrics read our plain counters at scrape time. */
export function createPrometheusRegistry(metrics: MetricsReader, prefix: string, tags: Readonly<Record<string, string>>): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ ...tags });
  for (const name of COUNTER_NAMES) {
    new Counter({
      name: prefix + name,
      help: METRIC_HELP[name],
      registers: [registry],
      collect() {
        this.reset();
        this.inc(metrics.counters[name]);
      },
    });
  }
  for (const name of GAUGE_NAMES) {
    new Gauge({
      name: prefix + name,
      help: METRIC_HELP[name],
      registers: [registry],
      collect() {
        this.set(metrics.gauge(name));
      },
    });
  }
  collectDefaultMetrics({ register: registry });
  return registry;
}
