/**
 * The flag table: one row per option, with anycable-go's names so users switch without surprises.
 * Env name = ANYCABLE_ + upper-cased flag (plus listed aliases such as PORT).
 */
export type FlagKind = 'string' | 'int' | 'bool' | 'list' | 'enum';

export interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  readonly default: string;
  readonly help: string;
  readonly group: string;
  readonly values?: readonly string[];
  /** Extra env vars read after ANYCABLE_<NAME>, e.g. PORT. */
  readonly envAliases?: readonly string[];
  /** Masked in --print-config. */
  readonly secret?: boolean;
  /** The value of the flag given without one (e.g. `--broker` alone means memory). */
  readonly bare?: string;
  /** For int flags: inclusive bounds. */
  readonly min?: number;
  readonly max?: number;
}

export const FLAGS: readonly FlagSpec[] = [
  // server
  { name: 'host', kind: 'string', default: 'localhost', group: 'server', help: 'Server host' },
  { name: 'port', kind: 'int', default: '8080', group: 'server', help: 'Server port', envAliases: ['PORT'], min: 0, max: 65535 },
  { name: 'path', kind: 'list', default: '/cable', group: 'server', help: 'WebSocket endpoint paths (comma list; a trailing /* or /{id} segment is allowed)' },
  { name: 'health_path', kind: 'string', default: '/health', group: 'server', help: 'Health check endpoint path' },
  { name: 'allowed_origins', kind: 'list', default: '', group: 'server', help: 'Accepted Origin hosts (comma list, leading * for suffix match); empty = no check' },
  { name: 'max_conn', kind: 'int', default: '0', group: 'server', help: 'Max open WebSocket connections; over it upgrades get 503 (0 = unlimited)', min: 0 },
  { name: 'shutdown_timeout', kind: 'int', default: '30', group: 'server', help: 'Graceful shutdown budget, seconds', min: 0 },
  { name: 'ssl_cert', kind: 'string', default: '', group: 'server', help: 'TLS certificate file (PEM)' },
  { name: 'ssl_key', kind: 'string', default: '', group: 'server', help: 'TLS private key file (PEM)' },
  { name: 'ping_interval', kind: 'int', default: '3', group: 'server', help: 'Ping interval, seconds (per connection: ?pi=<s>)', min: 1 },
  { name: 'max_message_size', kind: 'int', default: '65536', group: 'server', help: 'Max client frame size, bytes (larger: close 1009)', min: 1 },
  { name: 'max_command_queue_size', kind: 'int', default: '262144', group: 'server', help: 'Max bytes of client commands waiting for RPC per connection; over it: close 1013 (one command is always accepted)', min: 1024 },
  { name: 'sse', kind: 'bool', default: 'false', group: 'server', help: 'Serve Server-Sent Events at --sse_path (GET/POST, same auth and broadcasts as WebSockets)' },
  { name: 'sse_path', kind: 'string', default: '/events', group: 'server', help: 'SSE endpoint path' },
  { name: 'workers', kind: 'string', default: '1', group: 'server', help: 'uWebSockets.js worker threads serving the port as one node (auto = one per core)' },
  { name: 'ws_max_pending_size', kind: 'int', default: '1048576', group: 'server', help: 'Max send buffer per connection before a too_slow disconnect, bytes', min: 1024 },
  // auth
  { name: 'secret', kind: 'string', default: '', group: 'auth', help: 'Application secret: JWT secret and source of derived keys', secret: true },
  { name: 'jwt_secret', kind: 'string', default: '', group: 'auth', help: 'JWT secret(s), comma list for rotation (defaults to --secret)', secret: true },
  { name: 'jwt_param', kind: 'string', default: 'jid', group: 'auth', help: 'JWT query param (header: X-<param>)' },
  { name: 'enforce_jwt', kind: 'bool', default: 'false', group: 'auth', help: 'Reject connections without a JWT' },
  { name: 'noauth', kind: 'bool', default: 'false', group: 'auth', help: 'Accept every connection (identifiers {"sid":…}); HTTP broadcasts still need a key' },
  { name: 'public', kind: 'bool', default: 'false', group: 'auth', help: 'noauth + public streams + unauthenticated broadcasts' },
  { name: 'api_key', kind: 'string', default: '', group: 'auth', help: 'HTTP API key (defaults to HMAC of --secret with api-cable)', secret: true },
  { name: 'ws_api_key', kind: 'string', default: '', group: 'auth', help: 'WebSocket key: upgrades need ?token=<key> or a JWT', secret: true },
  { name: 'users_file', kind: 'string', default: '', group: 'auth', help: 'File of username:scrypt-hash lines for POST /auth/token' },
  { name: 'token_ttl', kind: 'int', default: '3600', group: 'auth', help: 'Default TTL of tokens minted by POST /auth/token, seconds', min: 1 },
  // rpc
  { name: 'rpc_host', kind: 'string', default: 'localhost:50051', group: 'rpc', help: 'RPC address (host:port for gRPC, http(s):// URL for HTTP RPC)' },
  { name: 'norpc', kind: 'bool', default: 'false', group: 'rpc', help: 'Run without RPC' },
  { name: 'headers', kind: 'list', default: 'cookie', group: 'rpc', help: 'Request headers proxied to RPC' },
  { name: 'rpc_concurrency', kind: 'int', default: '28', group: 'rpc', help: 'Max RPC calls in flight', min: 1 },
  { name: 'rpc_command_timeout', kind: 'int', default: '3000', group: 'rpc', help: 'Total RPC budget per call including retries, ms', min: 1 },
  { name: 'rpc_request_timeout', kind: 'int', default: '0', group: 'rpc', help: 'Per-attempt RPC deadline, ms (0 = the command timeout)', min: 0 },
  { name: 'rpc_keepalive_interval', kind: 'int', default: '0', group: 'rpc', help: 'gRPC keepalive ping interval, seconds (0 = off)', min: 0 },
  { name: 'http_rpc_secret', kind: 'string', default: '', group: 'rpc', help: 'HTTP RPC bearer secret (defaults to HMAC of --secret with rpc-cable)', secret: true },
  { name: 'http_rpc_timeout', kind: 'int', default: '3000', group: 'rpc', help: 'HTTP RPC request timeout, ms', min: 1 },
  { name: 'disconnect_mode', kind: 'enum', default: 'auto', values: ['auto', 'always', 'never'], group: 'rpc', help: 'When to call Disconnect' },
  { name: 'disconnect_rate', kind: 'int', default: '100', group: 'rpc', help: 'Max Disconnect calls per second', min: 1 },
  // broadcasting
  { name: 'broadcast_adapter', kind: 'list', default: 'http', values: ['http', 'redis', 'redisx', 'nats'], group: 'broadcast', help: 'Broadcast adapters (comma list of http, redis, redisx, nats)' },
  { name: 'http_broadcast_path', kind: 'string', default: '/_broadcast', group: 'broadcast', help: 'HTTP broadcast endpoint path' },
  { name: 'http_broadcast_port', kind: 'int', default: '8090', group: 'broadcast', help: 'Port of the HTTP API listener (broadcast, health, token, metrics; answers every HTTP/1.x request form, e.g. the anycable gem\'s); equal to --port = main port only; 0 = any free port', min: 0, max: 65535 },
  { name: 'broadcast_key', kind: 'string', default: '', group: 'broadcast', help: 'HTTP broadcast bearer key (defaults to HMAC of --secret with broadcast-cable; none = anyone may broadcast, warned at start)', secret: true },
  { name: 'http_broadcast_max_body', kind: 'int', default: '1048576', group: 'broadcast', help: 'Max HTTP broadcast body, bytes (larger: 413)', min: 1 },
  { name: 'redis_url', kind: 'string', default: 'redis://localhost:6379', group: 'broadcast', help: 'Redis URL', envAliases: ['REDIS_URL'], secret: true },
  { name: 'redis_sentinels', kind: 'list', default: '', group: 'broadcast', help: 'Redis Sentinel addresses ([:password@]host:port, comma list); then --redis_url names the master (redis://[:password@]<master name>[/db])' },
  { name: 'redis_tls_verify', kind: 'bool', default: 'true', group: 'broadcast', help: 'Verify the Redis server certificate (rediss://); anycable-go does not by default' },
  { name: 'redis_tls_ca_cert_path', kind: 'string', default: '', group: 'broadcast', help: 'CA certificate (PEM) for Redis TLS' },
  { name: 'redis_tls_client_cert_path', kind: 'string', default: '', group: 'broadcast', help: 'Client certificate (PEM) for Redis mTLS (with --redis_tls_client_key_path)' },
  { name: 'redis_tls_client_key_path', kind: 'string', default: '', group: 'broadcast', help: 'Client private key (PEM) for Redis mTLS' },
  { name: 'redis_channel', kind: 'string', default: '__anycable__', group: 'broadcast', help: 'Redis broadcast channel' },
  { name: 'nats_servers', kind: 'string', default: 'nats://127.0.0.1:4222', group: 'broadcast', help: 'NATS servers (comma list)' },
  { name: 'nats_channel', kind: 'string', default: '__anycable__', group: 'broadcast', help: 'NATS broadcast subject' },
  { name: 'redisx_stream', kind: 'string', default: '__anycable__', group: 'broadcast', help: 'Redis Stream the redisx adapter reads' },
  { name: 'redisx_group', kind: 'string', default: 'bx', group: 'broadcast', help: 'Consumer group of the redisx adapter' },
  { name: 'pubsub', kind: 'enum', default: 'none', values: ['none', 'redis', 'nats'], group: 'broadcast', help: 'Pub/sub between nodes' },
  // broker (reliable streams)
  { name: 'broker', kind: 'enum', default: 'none', values: ['none', 'memory', 'redis', 'nats'], bare: 'memory', group: 'broker', help: 'History and session store: memory (one node), redis or nats (shared); --broker alone = memory' },
  { name: 'history_limit', kind: 'int', default: '100', group: 'broker', help: 'Messages kept per stream', min: 1 },
  { name: 'history_ttl', kind: 'int', default: '300', group: 'broker', help: 'Seconds a message stays in history', min: 1 },
  { name: 'sessions_ttl', kind: 'int', default: '300', group: 'broker', help: 'Seconds a session can be restored after its last change (0 = no restore)', min: 0 },
  { name: 'presets', kind: 'list', default: '', values: ['broker', 'fly', 'heroku', 'none'], group: 'broker', help: 'Configuration presets (broker: memory broker, or redis/nats when their URL is set; fly, heroku: listen on 0.0.0.0, detected from their env; none: no detection)' },
  { name: 'presence_ttl', kind: 'int', default: '15', group: 'broker', help: 'Seconds a closed session stays present (live sessions are kept); then its presence leaves', min: 1 },
  { name: 'pong_timeout', kind: 'int', default: '0', group: 'broker', help: 'Seconds without any frame from an ext-json client before a no_pong disconnect (0 = off)', min: 0 },
  // streams
  { name: 'public_streams', kind: 'bool', default: 'false', group: 'streams', help: 'Allow unsigned $pubsub stream names' },
  { name: 'streams_secret', kind: 'string', default: '', group: 'streams', help: 'Signed streams secret (defaults to --secret)', secret: true },
  { name: 'streams_whisper', kind: 'bool', default: 'false', group: 'streams', help: 'Enable whispers on signed streams' },
  { name: 'streams_presence', kind: 'bool', default: 'true', group: 'streams', help: 'Enable presence (join/leave/info) on $pubsub streams' },
  { name: 'turbo_streams', kind: 'bool', default: 'false', group: 'streams', help: 'Verify Turbo::StreamsChannel signed names in the server' },
  { name: 'turbo_streams_secret', kind: 'string', default: '', group: 'streams', help: 'Turbo streams secret (defaults to the streams secret)', secret: true },
  // observability
  { name: 'log_level', kind: 'enum', default: 'info', values: ['debug', 'info', 'warn', 'error'], group: 'log', help: 'Log level' },
  { name: 'log_format', kind: 'enum', default: 'text', values: ['text', 'json'], group: 'log', help: 'Log format' },
  { name: 'debug', kind: 'bool', default: 'false', group: 'log', help: 'Shortcut for --log_level=debug' },
  { name: 'metrics_http', kind: 'string', default: '', group: 'metrics', help: 'Prometheus endpoint path, e.g. /metrics (off when empty)' },
  { name: 'metrics_host', kind: 'string', default: '', group: 'metrics', help: 'Metrics server host (with --metrics_port)' },
  { name: 'metrics_port', kind: 'int', default: '0', group: 'metrics', help: 'Separate metrics port (0 = the main port)', min: 0, max: 65535 },
  { name: 'metrics_prefix', kind: 'string', default: 'anycable_go_', group: 'metrics', help: 'Metric name prefix' },
  { name: 'metrics_tags', kind: 'list', default: '', group: 'metrics', help: 'Global metric labels, k:v comma list' },
  { name: 'metrics_log', kind: 'bool', default: 'false', group: 'metrics', help: 'Log counter deltas periodically' },
  { name: 'metrics_rotate_interval', kind: 'int', default: '15', group: 'metrics', help: 'Metrics log interval, seconds', min: 1 },
];

export function envNameFor(flag: string): string {
  return `ANYCABLE_${flag.toUpperCase()}`;
}
