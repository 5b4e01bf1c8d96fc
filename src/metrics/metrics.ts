/**
 * Counters are plain numbers on one object with a fixed shape: the hot path does `counters.x++`,
 * no label lookups, no allocation. Exporters read them when scraped or logged.
 * Names are anycable-go's, so existing dashboards keep working.
 */
export const COUNTER_NAMES = [
  'failed_auths_total',
  'client_msg_total',
  'failed_client_msg_total',
  'broadcast_msg_total',
  'failed_broadcast_msg_total',
  'remote_commands_total',
  'server_msg_total',
  'data_sent_total',
  'data_rcvd_total',
  'rpc_call_total',
  'rpc_retries_total',
  'rpc_error_total',
  'rpc_timeout_total',
  'rpc_canceled_total',
  'disconnected_slow_clients_total',
  'disconnected_command_overflow_total',
  'broker_reconnects_total',
  'history_hits_total',
  'history_misses_total',
  'sessions_restored_total',
  'session_restore_misses_total',
  'http_bad_requests_total',
  'token_requests_refused_total',
  'presence_events_total',
  'presence_errors_total',
] as const;

export const GAUGE_NAMES = [
  'clients_num',
  'clients_uniq_num',
  'broadcast_streams_num',
  'disconnect_queue_size',
  'rpc_pending_num',
  'broker_connected',
  'sse_clients_num',
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];
export type GaugeName = (typeof GAUGE_NAMES)[number];

export const METRIC_HELP: Record<CounterName | GaugeName, string> = {
  failed_auths_total: 'Connections rejected by authentication',
  client_msg_total: 'Frames received from clients',
  failed_client_msg_total: 'Client frames dropped as invalid',
  broadcast_msg_total: 'Broadcast messages accepted',
  failed_broadcast_msg_total: 'Broadcast payloads rejected as invalid',
  remote_commands_total: 'Remote commands received',
  server_msg_total: 'Frames sent to clients',
  data_sent_total: 'Bytes sent to clients',
  data_rcvd_total: 'Bytes received from clients',
  rpc_call_total: 'RPC calls made',
  rpc_retries_total: 'RPC calls retried',
  rpc_error_total: 'RPC calls failed',
  rpc_timeout_total: 'RPC calls that hit their deadline',
  rpc_canceled_total: 'RPC calls dropped because their connection closed while waiting',
  disconnected_slow_clients_total: 'Connections closed as too slow',
  disconnected_command_overflow_total: 'Connections closed because their commands waiting for RPC exceeded --max_command_queue_size',
  broker_reconnects_total: 'Reconnections to Redis/NATS',
  history_hits_total: 'History requests answered with confirm_history',
  history_misses_total: 'History requests answered with reject_history',
  sessions_restored_total: 'Connections that restored a previous session',
  session_restore_misses_total: 'Restore attempts whose session was unknown or expired (normal authentication followed)',
  http_bad_requests_total: 'HTTP API requests answered 400: unparseable, or HTTP/1.1 without Host',
  token_requests_refused_total: 'POST /auth/token requests refused: bad credentials, password login off, throttled (429) or busy (503)',
  presence_events_total: 'Presence join and leave events this node published',
  presence_errors_total: 'Presence store calls that failed (broker unreachable)',
  clients_num: 'Open client connections',
  clients_uniq_num: 'Distinct connection identifiers',
  broadcast_streams_num: 'Streams with at least one subscriber',
  disconnect_queue_size: 'Disconnect calls waiting',
  rpc_pending_num: 'RPC calls waiting for a free slot',
  broker_connected: 'Broadcast/pubsub broker connections that are up (Redis, NATS)',
  sse_clients_num: 'Open Server-Sent Events streams',
};

export type Counters = Record<CounterName, number>;

/** What exporters read: one thread's metrics, or a whole node's (src/cluster). */
export interface MetricsReader {
  readonly counters: Readonly<Counters>;
  gauge(name: GaugeName): number;
}

export class Metrics implements MetricsReader {
  readonly counters: Counters;
  private readonly gauges = new Map<GaugeName, () => number>();

  constructor() {
    const counters = {} as Counters;
    for (const name of COUNTER_NAMES) counters[name] = 0;
    this.counters = counters;
  }

  /** A gauge is read from its owner when scraped: nothing to update on the hot path. */
  registerGauge(name: GaugeName, read: () => number): void {
    const previous = this.gauges.get(name);
    // Several owners may report the same gauge (e.g. two broker connections): they add up.
    this.gauges.set(name, previous ? () => previous() + read() : read);
  }

  gauge(name: GaugeName): number {
    return this.gauges.get(name)?.() ?? 0;
  }
}
