import { Worker } from 'node:worker_threads';
import type { Config } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import { CablecatError, errorMessage } from '../errors.js';
import { Metrics } from '../metrics/metrics.js';
import { createPrometheusRegistry } from '../metrics/prometheus.js';
import { MetricsLogger } from '../metrics/metrics-logger.js';
import type { Publication } from '../broadcast/message.js';
import { ApiListener } from '../server/api-listener.js';
import type { Uws } from '../server/uws.js';
import { loadUsersFile } from '../auth/users.js';
import { NodeCore } from '../app/node-core.js';
import { nodeRoutes, sharesBroadcastPort } from '../app/http-routes.js';
import type { BrokerOp, BrokerOps, MetricsSnapshot, PrimaryMessage, WorkerBirth, WorkerMessage } from './messages.js';
import { brokerOpsOf } from './remote-broker.js';
import { ClusterMetrics } from './cluster-metrics.js';
import { MetricsCollector } from './metrics-collector.js';
import { NodeTally } from './node-tally.js';
import { createCells, releaseWorker } from './shared-cells.js';
import { foreignListeners, probeExclusive } from './port-guard.js';
import { createStreamFilterBuffer, streamBucket, StreamFilter } from './stream-filter.js';

const WORKER_ENTRY = new URL('./worker-main.js', import.meta.url);
/** How long a worker gets to close its sockets when told to stop now. */
const CLOSE_NOW_MS = 2_000;
/** A worker that lived this long before crashing is replaced at once; one crashing sooner waits longer each time. */
const STABLE_MS = 10_000;
const MAX_RESPAWN_DELAY_MS = 5_000;
/** How often the port is checked for another process sharing it (reading /proc/net/tcp* costs ~1 ms per 10k sockets). */
const PORT_CHECK_MS = 10_000;

export interface ClusterOptions {
  /** Where the workers' log lines go (the primary's own destination, so one stream carries the node's logs). */
  readonly logOutput?: NodeJS.WritableStream;
  /** How often the port is checked for another process sharing it. */
  readonly portCheckMs?: number;
}

interface WorkerSlot {
  readonly index: number;
  readonly thread: Worker;
  /** Streams the worker may follow, counted by the worker itself in shared memory. */
  readonly filter: StreamFilter;
  /** Publications for this worker not yet posted. */
  outbox: Publication[];
  readonly bornAt: number;
  /** Consecutive quick crashes, for the respawn backoff. */
  readonly quickCrashes: number;
  listening: boolean;
  lastError: string | null;
  readonly gone: Promise<void>;
}

/**
 * A node served by N worker threads: uWS in every worker, all on one port (SO_REUSEPORT; the kernel
 * spreads connections), and here, once per node, what must not be repeated per worker: the broker and
 * the positions it gives, pub/sub subscriptions (one per stream the node follows), the broadcast
 * adapters and the HTTP API listener, the RPC cap (shared memory), metrics. Every publication reaches
 * every worker that may follow its stream once, in the order it was accepted here. A crashed worker
 * is logged and replaced; the others keep their connections.
 */
export class ClusterPrimary {
  readonly metrics = new Metrics();
  port = 0;
  apiPort = 0;
  metricsPort = 0;
  private readonly core: NodeCore;
  private readonly cells: SharedArrayBuffer;
  private readonly slots: (WorkerSlot | null)[];
  private readonly tally: NodeTally;
  private readonly collector: MetricsCollector;
  private readonly clusterMetrics: ClusterMetrics;
  private readonly log: Logger;
  private readonly apiListener: ApiListener | null;
  private readonly metricsListener: ApiListener | null;
  private readonly metricsLogger: MetricsLogger | null;
  private readonly brokerOps: BrokerOps | null;
  /** The whole node's Prometheus text (workers' numbers collected first). */
  private readonly renderMetrics: () => Promise<string>;
  private serving = true;
  private stopping = false;
  /** What health reports down, as the workers were last told. */
  private problem: string | null = null;
  /** Set while another process shares the port. */
  private portShared: string | null = null;
  private watchTimer: NodeJS.Timeout | undefined;
  private lastRefresh = 0;
  private lastPortCheck = 0;
  private flushScheduled = false;
  /** Set once start() succeeded: from then on a worker that exits is replaced. */
  private started = false;

  constructor(private readonly config: Config, logger: Logger, private readonly uws: Uws, private readonly options: ClusterOptions = {}) {
    this.log = logger.child({ component: 'cluster' });
    this.cells = createCells(config.workers);
    this.slots = new Array<WorkerSlot | null>(config.workers).fill(null);
    this.core = new NodeCore(config, this.metrics, logger, (pub) => this.deliver(pub));
    this.brokerOps = this.core.broker ? brokerOpsOf(this.core.broker) : null;
    this.tally = new NodeTally((stream, followed) => {
      if (followed) this.core.pubsub?.subscribeStream(stream);
      else this.core.pubsub?.unsubscribeStream(stream);
    });
    this.metrics.registerGauge('broadcast_streams_num', () => this.tally.streamCount);
    this.metrics.registerGauge('clients_uniq_num', () => this.tally.identifierCount);
    this.collector = new MetricsCollector((worker, id) => {
      const slot = this.slots[worker];
      if (slot) this.post(slot, { t: 'collect_metrics', id });
    });
    this.clusterMetrics = new ClusterMetrics(this.metrics, () => this.collector.collect(this.liveSlots().map((slot) => slot.index)));
    const registry = config.metricsHttp ? createPrometheusRegistry(this.clusterMetrics, config.metricsPrefix, config.metricsTags) : null;
    this.renderMetrics = async () => {
      if (!registry) return '';
      await this.clusterMetrics.refresh();
      return registry.metrics();
    };
    const routes = nodeRoutes(config, {
      serving: () => this.serving,
      unavailable: () => this.unavailable(),
      accept: (pubs) => this.core.pipeline.accept(pubs, false),
      renderMetrics: registry ? this.renderMetrics : null,
      users: config.usersFile ? loadUsersFile(config.usersFile) : null,
      logStartWarnings: true,
    }, this.metrics, logger);
    // The main port's routes are served by every worker; the API listener and the metrics port are here.
    this.apiListener = config.broadcastAdapters.includes('http') && !sharesBroadcastPort(config) ? new ApiListener([...routes.shared, ...routes.apiOnly], this.metrics, logger) : null;
    this.metricsListener = routes.metricsPort ? new ApiListener([routes.metricsPort], this.metrics, logger, 'metrics_http', '--metrics_port') : null;
    this.metricsLogger = config.metricsLog ? new MetricsLogger(this.clusterMetrics, logger.child({ component: 'metrics' }), config.metricsRotateIntervalS * 1000) : null;
  }

  async start(): Promise<void> {
    try {
      // Anyone on the port (a second cablecat, reuseport or not) makes this fail: the port must be ours alone.
      this.port = await probeExclusive(this.uws, this.config.host, this.config.port);
      await this.core.startBroker();
      await this.core.startIngress();
      // Workers are born knowing what is down (the broker connects in the background).
      this.problem = this.unavailable();
      await Promise.all(this.slots.map((_, index) => this.spawn(index, 0)));
      const foreign = foreignListeners(this.port);
      if (foreign > 0) {
        throw new CablecatError('CABLECAT_ERR_LISTEN', `cannot listen on ${this.config.host}:${this.port}: another process started listening on port ${this.port} (SO_REUSEPORT) while the workers did`);
      }
      if (this.apiListener) this.apiPort = await this.apiListener.listen(this.config.host, this.config.httpBroadcastPort);
      if (this.metricsListener) this.metricsPort = await this.metricsListener.listen(this.config.metricsHost || this.config.host, this.config.metricsPort);
    } catch (err) {
      this.stopping = true;
      await this.closeWorkersNow();
      await this.apiListener?.close();
      await this.core.stopIngress(Date.now());
      await this.core.closeBroker();
      throw err;
    }
    if (sharesBroadcastPort(this.config) && this.config.broadcastAdapters.includes('http')) {
      this.log.warn({ port: this.port }, 'HTTP broadcasts on the main port only: uWS cannot parse the anycable gem\'s absolute-form requests, point its http_broadcast_url at another adapter or set a separate --http_broadcast_port');
    }
    this.started = true;
    this.lastPortCheck = Date.now();
    this.watchTimer = setInterval(() => this.watch(), 250);
    this.watchTimer.unref();
    this.metricsLogger?.start();
    this.log.info({ workers: this.config.workers, port: this.port }, 'workers listening');
  }

  /** Graceful, as one server: every worker tells its clients server_restart and flushes its Disconnect calls; then the node's parts stop. */
  async shutdown(): Promise<void> {
    const deadline = Date.now() + this.config.shutdownTimeoutMs;
    this.serving = false;
    this.stopping = true;
    clearInterval(this.watchTimer);
    const live = this.liveSlots();
    for (const slot of live) this.post(slot, { t: 'shutdown', deadline });
    // Workers bound their own shutdown by the deadline; one that overruns it is closed at once.
    const late = await Promise.race([
      Promise.all(live.map((slot) => slot.gone)).then(() => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(true), Math.max(0, deadline - Date.now()) + 250).unref()),
    ]);
    if (late) await this.closeWorkersNow();
    await this.core.stopIngress(deadline);
    await this.core.closeBroker();
    this.metricsLogger?.stop();
    await this.apiListener?.close();
    await this.metricsListener?.close();
  }

  /** Closes every worker's sockets at once (before the process exits: a thread holding uWS sockets would abort it). */
  async closeWorkersNow(): Promise<void> {
    this.stopping = true;
    const live = this.liveSlots();
    for (const slot of live) this.post(slot, { t: 'close_now' });
    await Promise.race([
      Promise.all(live.map((slot) => slot.gone)),
      new Promise((resolve) => setTimeout(resolve, CLOSE_NOW_MS).unref()),
    ]);
  }

  /** Tests only: makes worker `index` throw an uncaught exception. */
  crashWorker(index: number): void {
    const slot = this.slots[index];
    if (slot) this.post(slot, { t: 'crash' });
  }

  /** Thread ids of the live workers, by index (-1: none right now; diagnostics and tests). */
  workerThreadIds(): number[] {
    return this.slots.map((slot) => slot?.thread.threadId ?? -1);
  }

  /** Each live worker's own metrics, by index (diagnostics and tests: e.g. how connections spread). */
  workerMetrics(): Promise<ReadonlyMap<number, MetricsSnapshot>> {
    return this.collector.collect(this.liveSlots().map((slot) => slot.index));
  }

  // ---- workers ------------------------------------------------------------------------------

  private liveSlots(): WorkerSlot[] {
    return this.slots.filter((slot): slot is WorkerSlot => slot !== null);
  }

  /** Any message to a worker goes after the deliveries already accepted for it (a history reply must not overtake them). */
  private post(slot: WorkerSlot, message: PrimaryMessage): void {
    this.flush(slot);
    slot.thread.postMessage(message);
  }

  /** Starts worker `index`; resolves once it listens, rejects if it cannot start. */
  private spawn(index: number, quickCrashes: number): Promise<void> {
    const streams = createStreamFilterBuffer();
    const birth: WorkerBirth = {
      index,
      streams,
      // --disconnect_rate is the node's: each worker takes its share.
      config: { ...this.config, port: this.port, disconnectRate: Math.max(1, Math.floor(this.config.disconnectRate / this.config.workers)) },
      brokerKind: this.core.broker?.kind ?? null,
      cells: this.cells,
      unavailable: this.problem,
    };
    const thread = new Worker(WORKER_ENTRY, { workerData: birth, stdout: true });
    thread.stdout.pipe(this.options.logOutput ?? process.stdout, { end: false });
    let gone: () => void = () => {};
    const slot: WorkerSlot = {
      index, thread, filter: new StreamFilter(streams), outbox: [], bornAt: Date.now(), quickCrashes, listening: false, lastError: null,
      gone: new Promise<void>((resolve) => { gone = resolve; }),
    };
    this.slots[index] = slot;
    return new Promise<void>((resolve, reject) => {
      thread.on('message', (message: WorkerMessage) => {
        if (message.t === 'listening') {
          slot.listening = true;
          resolve();
        } else if (message.t === 'start_failed') {
          reject(new CablecatError(message.code ?? 'CABLECAT_ERR_WORKER', message.error));
        } else {
          this.receive(slot, message);
        }
      });
      thread.on('error', (err) => {
        slot.lastError ??= err.stack ?? err.message;
      });
      thread.on('exit', (code) => {
        if (!slot.listening) reject(new CablecatError('CABLECAT_ERR_WORKER', `worker ${index} exited (code ${code}) before listening${slot.lastError ? `: ${slot.lastError}` : ''}`));
        this.exited(slot, code);
        gone();
      });
    });
  }

  private exited(slot: WorkerSlot, code: number): void {
    if (this.slots[slot.index] === slot) this.slots[slot.index] = null;
    this.tally.forget(slot.index);
    releaseWorker(this.cells, slot.index);
    // Its answer to a scrape in flight is dropped; its counters so far stay counted.
    this.collector.workerGone(slot.index);
    this.clusterMetrics.retire(slot.index);
    const lived = Date.now() - slot.bornAt;
    const err = slot.lastError ?? undefined;
    if (this.stopping || !this.started) {
      // A failed start is reported by start(); a crash while stopping is still worth a line.
      if (code !== 0 && slot.listening) this.log.error({ worker: slot.index, code, err }, 'worker crashed while the node was stopping');
      return;
    }
    const quickCrashes = lived >= STABLE_MS ? 0 : slot.quickCrashes + 1;
    const delay = quickCrashes === 0 ? 0 : Math.min(MAX_RESPAWN_DELAY_MS, 100 * 2 ** (quickCrashes - 1));
    // A replacement that could not start is tried again too, waiting longer each time.
    this.log.error({ worker: slot.index, code, lived_ms: lived, respawn_in_ms: delay, err }, slot.listening
      ? 'worker crashed; its connections are lost, replacing it'
      : 'replacement worker failed to start; trying again');
    setTimeout(() => {
      if (this.stopping) return;
      this.spawn(slot.index, quickCrashes).then(
        () => {
          this.log.info({ worker: slot.index }, 'worker replaced');
          this.checkPort();
        },
        // Its exit schedules the next attempt (see above).
        (failure: unknown) => { if (!this.stopping) this.log.warn({ worker: slot.index, err: errorMessage(failure) }, 'replacement worker failed to start'); },
      );
    }, delay).unref();
  }

  private receive(slot: WorkerSlot, message: WorkerMessage): void {
    switch (message.t) {
      case 'stream':
        this.tally.stream(slot.index, message.stream, message.followed);
        return;
      case 'identifiers':
        for (const [identifiers, change] of message.changes) this.tally.identifier(slot.index, identifiers, change === 1);
        return;
      case 'route':
        this.core.pipeline.route(message.pub, false);
        return;
      case 'accept':
        this.answer(slot, message.id, () => this.core.pipeline.accept(message.pubs, false));
        return;
      case 'broker':
        this.answer(slot, message.id, () => this.brokerCall(message.op, message.args));
        return;
      case 'render_metrics':
        this.answer(slot, message.id, this.renderMetrics);
        return;
      case 'metrics':
        this.collector.answered(slot.index, message.id, message.snapshot);
        return;
      case 'crashed':
        slot.lastError = message.error;
        return;
      default:
        return;
    }
  }

  /** Runs a worker's request and replies; a throw becomes an error reply (as one thread would answer 500), never a crash here. */
  private answer(slot: WorkerSlot, id: number, run: () => unknown): void {
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(run());
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (value) => this.post(slot, { t: 'reply', id, ok: true, value }),
      (err: unknown) => this.post(slot, { t: 'reply', id, ok: false, error: errorMessage(err) }),
    );
  }

  private brokerCall(op: BrokerOp, args: readonly unknown[]): Promise<unknown> {
    if (!this.brokerOps) return Promise.reject(new Error('no broker on this node'));
    const fn = this.brokerOps[op] as ((...a: readonly unknown[]) => Promise<unknown>) | undefined;
    if (typeof fn !== 'function') return Promise.reject(new Error(`unknown broker call ${String(op)}`));
    return fn(...args);
  }

  // ---- node-wide state --------------------------------------------------------------------

  /**
   * Every worker that may follow a broadcast's stream gets it (every worker gets a remote disconnect),
   * in the order the primary handles them. They leave in one message per turn of the loop: a worker
   * wakes once per burst, and not at all for streams it does not follow.
   */
  private deliver(pub: Publication): void {
    const bucket = pub.kind === 'broadcast' ? streamBucket(pub.stream) : -1;
    for (const slot of this.slots) {
      if (slot === null || (bucket >= 0 && !slot.filter.mayFollow(bucket))) continue;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushAll());
      }
      slot.outbox.push(pub);
    }
  }

  private flushAll(): void {
    this.flushScheduled = false;
    for (const slot of this.slots) if (slot) this.flush(slot);
  }

  private flush(slot: WorkerSlot): void {
    if (slot.outbox.length === 0) return;
    const message: PrimaryMessage = { t: 'deliver', pubs: slot.outbox };
    slot.outbox = [];
    slot.thread.postMessage(message);
  }

  /** What health reports down: the broker, or the port shared with another process. */
  private unavailable(): string | null {
    return this.core.unavailable() ?? this.portShared;
  }

  private watch(): void {
    if (Date.now() - this.lastPortCheck >= (this.options.portCheckMs ?? PORT_CHECK_MS)) this.checkPort();
    // Workers answer health and restore requests from what the primary last told them.
    const problem = this.unavailable();
    if (problem !== this.problem) {
      this.problem = problem;
      for (const slot of this.liveSlots()) this.post(slot, { t: 'unavailable', problem });
    }
    // The metrics log reads the node's numbers as last collected: keep them fresh.
    if (this.metricsLogger && Date.now() - this.lastRefresh >= (this.config.metricsRotateIntervalS * 1000) / 2) {
      this.lastRefresh = Date.now();
      void this.clusterMetrics.refresh();
    }
  }

  /**
   * SO_REUSEPORT lets any process of this user join the port at any time and take a share of the new
   * connections. Nothing can push it out again, so the node says so: an error log and 503 on health,
   * until the other process leaves.
   */
  private checkPort(): void {
    this.lastPortCheck = Date.now();
    const foreign = foreignListeners(this.port);
    const shared = foreign > 0 ? `Port shared with another process (${foreign} foreign listener${foreign > 1 ? 's' : ''})` : null;
    if (shared === this.portShared) return;
    this.portShared = shared;
    if (shared) this.log.error({ port: this.port, foreign }, 'another process is listening on the node\'s port (SO_REUSEPORT) and takes part of its connections; health answers 503 until it leaves');
    else this.log.info({ port: this.port }, 'the node\'s port is its own again');
  }
}
