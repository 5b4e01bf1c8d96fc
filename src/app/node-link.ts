import type { Broker } from '../broker/broker.js';
import type { Publication } from '../broadcast/message.js';
import type { PublicationSink } from '../broadcast/pipeline.js';
import type { CallSlots } from '../rpc/semaphore.js';
import type { ConnectionGate } from '../node/connection-gate.js';

/**
 * How a server reaches what exists once per node (broker, positions, pub/sub, the RPC cap, --max_conn,
 * metrics): in this thread when it is the whole node (LocalLink), through the primary thread when it is
 * one worker of a node (src/cluster/worker-port.ts).
 */
export interface NodeLink {
  /** The node's broker (in a worker, reached through the primary); null without --broker. */
  readonly broker: Broker | null;
  /** App broadcasts from the main port, whispers and presence events. */
  readonly publications: PublicationSink;
  /** RPC slots: --rpc_concurrency holds for the node, however many workers share it. */
  readonly rpcSlots: CallSlots;
  /** The node follows a stream while any worker has a subscriber (pub/sub subscriptions are per node). */
  streamAdded(stream: string): void;
  streamRemoved(stream: string): void;
  /** Registers where the node's deliveries go (this thread's Node). */
  onDeliver(deliver: (pub: Publication) => void): void;
  /** --max_conn for the whole node. */
  readonly gate: ConnectionGate;
  /** The Prometheus text of the whole node. */
  renderMetrics(): Promise<string>;
  /** What is down (health answers 503 naming it), or null. */
  unavailable(): string | null;
}
