import type { Broker } from '../broker/broker.js';
import type { Publication } from '../broadcast/message.js';
import type { PublicationSink } from '../broadcast/pipeline.js';
import type { CallSlots } from '../rpc/semaphore.js';
import type { ConnectionGate } from '../node/connection-gate.js';

/**
 * What a worker thread's server takes from its node's primary thread instead of building it:
 * everything that must exist once per node (broker, positions, pub/sub, the RPC cap, metrics).
 */
export interface WorkerLink {
  /** The node's broker, reached through the primary; null without --broker. */
  readonly broker: Broker | null;
  /** App broadcasts from the main port, whispers and presence events: all go through the primary. */
  readonly publications: PublicationSink;
  /** RPC slots shared by every worker: --rpc_concurrency holds for the node. */
  readonly rpcSlots: CallSlots;
  /** The node follows a stream while any worker has a subscriber (pub/sub subscriptions are per node). */
  streamAdded(stream: string): void;
  streamRemoved(stream: string): void;
  /** Registers where the primary's deliveries go (this worker's node). */
  onDeliver(deliver: (pub: Publication) => void): void;
  /** Identifiers got their first connection on this worker, or lost their last (the node counts clients_uniq_num). */
  present(identifiers: string, present: boolean): void;
  /** --max_conn for the whole node. */
  readonly gate: ConnectionGate;
  /** The Prometheus text of the whole node. */
  renderMetrics(): Promise<string>;
  /** What the primary reports down (health answers 503 naming it), or null. */
  unavailable(): string | null;
}
