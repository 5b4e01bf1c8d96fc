import { Worker } from 'node:worker_threads';
import type { Config } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import { CablecatError } from '../errors.js';
import { Metrics } from '../metrics/metrics.js';
import { createPrometheusRegistry } from '../metrics/prometheus.js';
import { MetricsLogger } from '../metrics/metrics-logger.js';
import type { Publication } from '../broadcast/message.js';
import { ApiListener } from '../server/api-listener.js';
import type { Uws } from '../server/uws.js';
import { loadUsersFile } from '../auth/users.js';
import { NodeCore } from '../app/node-core.js';
import { nodeRoutes, sharesBroadcastPort } from '../app/http-routes.js';
import type { BrokerOps, MetricsSnapshot, PrimaryMessage, WorkerBirth, WorkerMessage } from './messages.js';
import { brokerOpsOf } from './remote-broker.js';
import { ClusterMetrics } from './cluster-metrics.js';
import { ConnectionCells, createCells, reclaimSlots } from './shared-cells.js';
import { foreignListeners, probeExclusive } from './port-guard.js';
import { createStreamFilterBuffer, streamBucket, StreamFilter } from './stream-filter.js';

const WORKER_ENTRY = new URL('./worker-main.js', import.meta.url);
/** How long a metrics scrape waits for a worker's numbers. */
const COLLECT_TIMEOUT_MS = 1_000;
/** How long a worker gets to close its sockets when told to stop now. */
const CLOSE_NOW_MS = 2_000;
/** A worker that lived this long before crashing is replaced at once; one crashing sooner waits longer each time. */
const STABLE_MS = 10_000;
const MAX_RESPAWN_DELAY_MS = 5_000;

interface WorkerSlot {
  readonly index: number;
  thread: Worker;
  /** Streams this worker has subscribers on. */
  readonly streams: Set<string>;
  /** Connection identifiers with a connection on this worker. */
  readonly identifiers: Set<string>;
  /** Streams the worker may follow, counted by the worker itself in shared memory. */
  readonly filter: StreamFilter;
  /** Publications for this worker not yet posted. */
  outbox: Publication[];
  bornAt: number;
  /** Consecutive quick crashes, for the respawn backoff. */
  quickCrashes: number;
  lastError: string | null;
  exited: Promise<number>;
}

/**
 * A node served by N worker threads: uWS in every worker, all on one port (SO_REUSEPORT; the kernel
 * spreads connections), and here, once per node, what must not be repeated per worker: the broker and
 * the positions it gives, pub/sub subscriptions (one per stream the node follows), the broadcast
 * adapters and the HTTP API listener, the RPC cap (shared memory), metrics. Every publication reaches
 * every worker once, in the order it was accepted here. A crashed worker is logged and replaced; the
 * others keep their connections.
 */
export class ClusterPrimary {
  readonly metrics = new Metrics();
  port = 0;
  apiPort = 0;
  metricsPort = 0;
  private readonly core: NodeCore;
  private readonly cells: SharedArrayBuffer;
  private readonly slots: (WorkerSlot | null)[];
  /** Stream → how many workers follow it; pub/sub follows the stream while it is above zero. */
  private readonly followers = new Map<string, number>();
  /** Connection identifiers → how many workers have connections with them (clients_uniq_num). */
  private readonly identifiers = new Map<string, number>();
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
  private problem: string | null = null;
  private watchTimer: NodeJS.Timeout | undefined;
  private nextCollectId = 1;
  private lastRefresh = 0;
  private flushScheduled = false;
  private readonly collects = new Map<number, { readonly snapshots: Map<number, MetricsSnapshot>; readonly waiting: Set<number>; readonly done: () => void }>();

  /** `logOutput`: where the workers' log lines go (the primary's own destination, so one stream carries the node's logs). */
  constructor(private readonly config: Config, logger: Logger, private readonly uws: Uws, private readonly logOutput: NodeJS.WritableStream = process.stdout) {
    this.log = logger.child({ component: 'cluster' });
    this.cells = createCells(config.workers);
    this.slots = new Array<WorkerSlot | null>(config.workers).fill(null);
    this.core = new NodeCore(config, this.metrics, logger, (pub) => this.deliver(pub));
    this.brokerOps = this.core.broker ? brokerOpsOf(this.core.broker) : null;
    this.metrics.registerGauge('broadcast_streams_num', () => this.followers.size);
    this.metrics.registerGauge('clients_uniq_num', () => this.identifiers.size);
    this.clusterMetrics = new ClusterMetrics(this.metrics, () => this.collectMetrics());
    const registry = config.metricsHttp ? createPrometheusRegistry(this.clusterMetrics, config.metricsPrefix, config.metricsTags) : null;
    this.renderMetrics = async () => {
      if (!registry) return '';
      await this.clusterMetrics.refresh();
      return registry.metrics();
    };
    const routes = nodeRoutes(config, {
      serving: () => this.serving,
      unavailable: () => this.core.unavailable(),
      accept: (pubs) => this.core.pipeline.accept(pubs, false),
      renderMetrics: registry ? this.renderMetrics : null,
      users: config.usersFile ? loadUsersFile(config.usersFile) : null,
    }, this.metrics, logger, true);
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
      await Promise.all(this.slots.map((_, index) => this.spawn(index)));
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
    this.problem = this.core.unavailable();
    // Workers answer health and restore requests from what the primary last told them about the broker.
    this.watchTimer = setInterval(() => {
      this.watchBroker();
      // The metrics log reads the node's numbers as last collected: keep them fresh.
      if (this.metricsLogger && Date.now() - this.lastRefresh >= (this.config.metricsRotateIntervalS * 1000) / 2) {
        this.lastRefresh = Date.now();
        void this.clusterMetrics.refresh();
      }
    }, 250);
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
    const late = await Promise.race([
      Promise.all(live.map((slot) => slot.exited)).then(() => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(true), Math.max(0, deadline - Date.now()) + 1_000).unref()),
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
      Promise.all(live.map((slot) => slot.exited)),
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
    return this.collectMetrics();
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
  private spawn(index: number, previous: WorkerSlot | null = null): Promise<void> {
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
    thread.stdout.pipe(this.logOutput, { end: false });
    let exitCode: (code: number) => void = () => {};
    const slot: WorkerSlot = {
      index, thread, streams: new Set(), identifiers: new Set(), filter: new StreamFilter(streams), outbox: [], bornAt: Date.now(), quickCrashes: previous?.quickCrashes ?? 0, lastError: null,
      exited: new Promise<number>((resolve) => { exitCode = resolve; }),
    };
    this.slots[index] = slot;
    return new Promise<void>((resolve, reject) => {
      let listening = false;
      thread.on('message', (message: WorkerMessage) => {
        if (message.t === 'listening') {
          listening = true;
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
        exitCode(code);
        if (!listening) reject(new CablecatError('CABLECAT_ERR_WORKER', `worker ${index} exited (code ${code}) before listening${slot.lastError ? `: ${slot.lastError}` : ''}`));
        this.exited(slot, code);
      });
    });
  }

  private exited(slot: WorkerSlot, code: number): void {
    if (this.slots[slot.index] === slot) this.slots[slot.index] = null;
    for (const stream of slot.streams) this.unfollow(stream);
    slot.streams.clear();
    for (const identifiers of slot.identifiers) this.countIdentifiers(identifiers, -1);
    slot.identifiers.clear();
    ConnectionCells.clear(this.cells, slot.index);
    reclaimSlots(this.cells, slot.index);
    this.clusterMetrics.retire(slot.index);
    for (const collect of this.collects.values()) if (collect.waiting.delete(slot.index) && collect.waiting.size === 0) collect.done();
    if (this.stopping) return;
    const lived = Date.now() - slot.bornAt;
    slot.quickCrashes = lived >= STABLE_MS ? 0 : slot.quickCrashes + 1;
    const delay = slot.quickCrashes === 0 ? 0 : Math.min(MAX_RESPAWN_DELAY_MS, 100 * 2 ** (slot.quickCrashes - 1));
    this.log.error({ worker: slot.index, code, lived_ms: lived, respawn_in_ms: delay, err: slot.lastError ?? undefined }, 'worker crashed; its connections are lost, replacing it');
    setTimeout(() => {
      if (this.stopping) return;
      this.spawn(slot.index, slot).then(
        () => this.log.info({ worker: slot.index }, 'worker replaced'),
        (err: unknown) => this.log.error({ worker: slot.index, err: err instanceof Error ? err.message : String(err) }, 'replacement worker failed to start'),
      );
    }, delay).unref();
  }

  private receive(slot: WorkerSlot, message: WorkerMessage): void {
    switch (message.t) {
      case 'stream':
        if (message.followed) {
          if (slot.streams.has(message.stream)) return;
          slot.streams.add(message.stream);
          this.follow(message.stream);
        } else if (slot.streams.delete(message.stream)) {
          this.unfollow(message.stream);
        }
        return;
      case 'identifiers':
        for (const [identifiers, change] of message.changes) {
          if (change === 1 ? slot.identifiers.has(identifiers) : !slot.identifiers.delete(identifiers)) continue;
          if (change === 1) slot.identifiers.add(identifiers);
          this.countIdentifiers(identifiers, change);
        }
        return;
      case 'route':
        this.core.pipeline.route(message.pub, false);
        return;
      case 'accept':
        this.answer(slot, message.id, Promise.resolve(this.core.pipeline.accept(message.pubs, false)));
        return;
      case 'broker':
        this.answer(slot, message.id, this.brokerCall(message.op, message.args));
        return;
      case 'render_metrics':
        this.answer(slot, message.id, this.renderMetrics());
        return;
      case 'metrics':
        this.collected(slot.index, message.id, message.snapshot);
        return;
      case 'crashed':
        slot.lastError = message.error;
        return;
      case 'stopped':
      case 'listening':
      case 'start_failed':
        return;
    }
  }

  private answer(slot: WorkerSlot, id: number, result: Promise<unknown>): void {
    result.then(
      (value) => this.post(slot, { t: 'reply', id, ok: true, value }),
      (err: unknown) => this.post(slot, { t: 'reply', id, ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
  }

  private brokerCall(op: keyof BrokerOps, args: readonly unknown[]): Promise<unknown> {
    if (!this.brokerOps) return Promise.reject(new Error('no broker on this node'));
    const fn = this.brokerOps[op] as (...a: readonly unknown[]) => Promise<unknown>;
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

  private follow(stream: string): void {
    const count = this.followers.get(stream) ?? 0;
    this.followers.set(stream, count + 1);
    if (count === 0) this.core.pubsub?.subscribeStream(stream);
  }

  private unfollow(stream: string): void {
    const count = this.followers.get(stream) ?? 0;
    if (count > 1) {
      this.followers.set(stream, count - 1);
      return;
    }
    this.followers.delete(stream);
    if (count === 1) this.core.pubsub?.unsubscribeStream(stream);
  }

  private countIdentifiers(identifiers: string, change: 1 | -1): void {
    const count = (this.identifiers.get(identifiers) ?? 0) + change;
    if (count > 0) this.identifiers.set(identifiers, count);
    else this.identifiers.delete(identifiers);
  }

  private watchBroker(): void {
    const problem = this.core.unavailable();
    if (problem === this.problem) return;
    this.problem = problem;
    for (const slot of this.liveSlots()) this.post(slot, { t: 'unavailable', problem });
  }

  /** Every live worker's metrics, waiting at most COLLECT_TIMEOUT_MS. */
  private collectMetrics(): Promise<ReadonlyMap<number, MetricsSnapshot>> {
    const live = this.liveSlots();
    const id = this.nextCollectId++;
    const snapshots = new Map<number, MetricsSnapshot>();
    if (live.length === 0) return Promise.resolve(snapshots);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.collects.delete(id);
        resolve(snapshots);
      };
      const timer = setTimeout(done, COLLECT_TIMEOUT_MS);
      this.collects.set(id, { snapshots, waiting: new Set(live.map((slot) => slot.index)), done });
      for (const slot of live) this.post(slot, { t: 'collect_metrics', id });
    });
  }

  private collected(index: number, id: number, snapshot: MetricsSnapshot): void {
    const collect = this.collects.get(id);
    if (!collect?.waiting.delete(index)) return;
    collect.snapshots.set(index, snapshot);
    if (collect.waiting.size === 0) collect.done();
  }
}
