import type { MessagePort } from 'node:worker_threads';
import type { Publication } from '../broadcast/message.js';
import type { PublicationSink } from '../broadcast/pipeline.js';
import { GAUGE_NAMES, Metrics, type GaugeName } from '../metrics/metrics.js';
import type { BrokerOp, BrokerOps, MetricsSnapshot, PrimaryMessage, WorkerBirth, WorkerMessage } from './messages.js';
import { RemoteBroker } from './remote-broker.js';
import { SharedGate } from './shared-cells.js';
import { SharedSlots } from './shared-slots.js';
import { StreamFilter } from './stream-filter.js';
import type { NodeLink } from '../app/node-link.js';
import type { IdentifierEvents } from '../node/session-registry.js';

/** The messages that expect a reply, before the id is given (distributed over the union, so each keeps its shape). */
type WorkerRequest = Extract<WorkerMessage, { t: 'accept' | 'broker' | 'render_metrics' }> extends infer M ? M extends unknown ? Omit<M, 'id'> : never : never;

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
}

/** Control messages the worker's entry point handles itself (shutdown, crash). */
export type ControlMessage = Extract<PrimaryMessage, { t: 'shutdown' } | { t: 'close_now' } | { t: 'crash' }>;

/** The worker's end of its link to the primary thread: requests with ids, deliveries in order. */
export class WorkerPort implements NodeLink, IdentifierEvents {
  readonly broker: RemoteBroker | null;
  readonly publications: PublicationSink;
  readonly rpcSlots: SharedSlots;
  readonly gate: SharedGate;
  private readonly streamFilter: StreamFilter;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private deliver: (pub: Publication) => void = () => {};
  private problem: string | null;
  private metrics: Metrics | null = null;
  private identifierChanges: Array<readonly [string, 1 | -1]> = [];

  constructor(private readonly port: MessagePort, birth: WorkerBirth, private readonly onControl: (message: ControlMessage) => void) {
    this.problem = birth.unavailable;
    this.rpcSlots = new SharedSlots(birth.cells, birth.config.rpcConcurrency, birth.index);
    this.gate = new SharedGate(birth.cells, birth.index, birth.config.maxConn);
    this.streamFilter = new StreamFilter(birth.streams);
    this.broker = birth.brokerKind ? new RemoteBroker(birth.brokerKind, this.brokerCall, () => this.problem === null) : null;
    this.publications = {
      accept: (pubs) => this.request<boolean>({ t: 'accept', pubs }),
      route: (pub) => {
        this.post({ t: 'route', pub });
        return true;
      },
    };
    port.on('message', (message: PrimaryMessage) => this.receive(message));
  }

  /** Metrics the primary collects from this worker. */
  reportMetricsOf(metrics: Metrics): void {
    this.metrics = metrics;
  }

  post(message: WorkerMessage): void {
    this.port.postMessage(message);
  }

  /**
   * Identifiers got their first connection on this worker, or lost their last (the node counts
   * clients_uniq_num). Batched per turn of the loop: a connect storm sends one message per turn.
   */
  present(identifiers: string, present: boolean): void {
    if (this.identifierChanges.length === 0) setImmediate(() => this.flushIdentifiers());
    this.identifierChanges.push([identifiers, present ? 1 : -1]);
  }

  private flushIdentifiers(): void {
    if (this.identifierChanges.length === 0) return;
    const changes = this.identifierChanges;
    this.identifierChanges = [];
    this.post({ t: 'identifiers', changes });
  }

  streamAdded(stream: string): void {
    this.streamFilter.add(stream);
    this.post({ t: 'stream', stream, followed: true });
  }

  streamRemoved(stream: string): void {
    this.streamFilter.remove(stream);
    this.post({ t: 'stream', stream, followed: false });
  }

  onDeliver(deliver: (pub: Publication) => void): void {
    this.deliver = deliver;
  }

  renderMetrics(): Promise<string> {
    return this.request<string>({ t: 'render_metrics' });
  }

  unavailable(): string | null {
    return this.problem;
  }

  private readonly brokerCall = <K extends BrokerOp>(op: K, args: Parameters<BrokerOps[K]>): ReturnType<BrokerOps[K]> =>
    this.request({ t: 'broker', op, args }) as ReturnType<BrokerOps[K]>;

  /** Sends a request (its id is filled in here) and resolves with the primary's reply. */
  private request<T>(message: WorkerRequest): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.post({ ...message, id } as WorkerMessage);
    });
  }

  private receive(message: PrimaryMessage): void {
    switch (message.t) {
      case 'deliver':
        for (const pub of message.pubs) this.deliver(pub);
        return;
      case 'reply': {
        const pending = this.pending.get(message.id);
        if (!pending) return;
        this.pending.delete(message.id);
        if (message.ok) pending.resolve(message.value);
        else pending.reject(new Error(message.error));
        return;
      }
      case 'unavailable':
        this.problem = message.problem;
        return;
      case 'collect_metrics':
        // The node's clients_uniq_num must already include what this worker's numbers count.
        this.flushIdentifiers();
        this.post({ t: 'metrics', id: message.id, snapshot: this.snapshot() });
        return;
      default:
        this.onControl(message);
    }
  }

  private snapshot(): MetricsSnapshot {
    const gauges = {} as Record<GaugeName, number>;
    for (const name of GAUGE_NAMES) gauges[name] = this.metrics?.gauge(name) ?? 0;
    // Before the server exists there is nothing counted yet: zeros.
    return { counters: { ...(this.metrics ?? new Metrics()).counters }, gauges };
  }
}
