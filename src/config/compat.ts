import { FLAGS, envNameFor } from './flags.js';

/**
 * anycable-go's configuration surface beyond our flag table, so that a config written for anycable-go
 * never makes cablecat exit 2: deprecated names are read as their successors, flags of features cablecat
 * does not have are accepted with a warning, and unknown ANYCABLE_* env vars are named in one warning.
 */

interface Renamed {
  /** Our flag that takes the value. */
  readonly to: string;
  /** For deprecated bools that select a value of another flag (`--disable_disconnect` → `--disconnect_mode=never`). */
  readonly whenTrue?: string;
  /** Also set, e.g. `--turbo_rails_key` switches Turbo Streams on. */
  readonly implies?: Readonly<Record<string, string>>;
}

const RENAMED: ReadonlyMap<string, Renamed> = new Map<string, Renamed>([
  ['jwt_id_key', { to: 'jwt_secret' }],
  ['jwt_id_param', { to: 'jwt_param' }],
  ['jwt_id_enforce', { to: 'enforce_jwt' }],
  ['http_broadcast_secret', { to: 'broadcast_key' }],
  ['turbo_rails_key', { to: 'turbo_streams_secret', implies: { turbo_streams: 'true' } }],
  ['disable_disconnect', { to: 'disconnect_mode', whenTrue: 'never' }],
  ['metrics_log_interval', { to: 'metrics_rotate_interval' }],
]);

/** anycable-go options for features cablecat does not have: accepted, ignored, and said so. */
interface Ignored { readonly bool: boolean; readonly note: string }

const IGNORED: ReadonlyMap<string, Ignored> = new Map<string, Ignored>([
  ...['embed_nats', 'enable_ws_compression', 'enable_native_pings', 'rpc_enable_tls', 'rpc_tls_verify',
    'cable_ready', 'ds', 'ds_skip_auth', 'ignore_config_path', 'nats_dont_randomize_servers', 'redis_disable_cache', 'http_broadcast_cors']
    .map((name): [string, Ignored] => [name, { bool: true, note: noteFor(name) }]),
  ...['statsd_host', 'statsd_prefix', 'statsd_tags_format', 'stats_refresh_interval', 'node_id', 'shutdown_delay', 'proxy_cookies',
    'rpc_impl', 'rpc_tls_root_ca', 'rpc_max_call_recv_size', 'rpc_max_call_send_size', 'read_buffer_size', 'write_buffer_size', 'ws_write_timeout',
    'ping_timestamp_precision', 'hub_gopool_size', 'disconnect_backlog_size', 'shutdown_pool_size', 'cable_ready_secret', 'pusher_app_id',
    'pusher_app_key', 'pusher_secret', 'pusher_api_port', 'ds_path', 'ds_poll_interval', 'ds_sse_ttl', 'api_port', 'api_path', 'api_secret',
    'metrics_log_filter', 'metrics_log_formatter', 'config_path', 'redisx_read_block_milliseconds', 'redis_keepalive_interval',
    'redis_sentinel_discovery_interval', 'enats_addr', 'enats_cluster', 'enats_cluster_name', 'enats_cluster_routes', 'enats_gateway',
    'enats_gateways', 'enats_gateway_advertise', 'enats_server_name', 'enats_store_dir', 'enats_max_payload', 'enats_debug', 'enats_trace']
    .map((name): [string, Ignored] => [name, { bool: false, note: noteFor(name) }]),
]);

function noteFor(name: string): string {
  if (name.startsWith('enats') || name === 'embed_nats') return 'there is no embedded NATS: run nats-server and point --nats_servers at it';
  if (name.startsWith('statsd') || name === 'stats_refresh_interval') return 'there is no StatsD exporter: use --metrics_http (Prometheus) or --metrics_log';
  if (name.startsWith('pusher')) return 'the Pusher protocol is not implemented';
  if (name.startsWith('ds')) return 'Durable Streams are not implemented';
  if (name.startsWith('api_')) return 'the REST API (/api/publish) is not implemented: use POST /_broadcast';
  if (name.startsWith('rpc_')) return 'gRPC TLS, message size and implementation overrides are not implemented';
  if (name === 'redis_sentinel_discovery_interval') return 'ioredis asks the sentinels again on every reconnect';
  if (name === 'config_path' || name === 'ignore_config_path') return 'there is no TOML config file: use flags or ANYCABLE_* env vars';
  return 'not implemented in cablecat';
}

/** Env vars that anycable-go or the anycable gem (often in the same environment) read; we accept them silently. */
const SILENT_ENV = new Set([
  'fly_rpc_app_name', 'fly_ws_app_name', 'disable_telemetry', 'memory_metrics',
  // the anycable gem (Rails side): not server settings
  'http_broadcast_url', 'websocket_url', 'rpc_pool_size', 'rpc_max_waiting_requests', 'rpc_poll_period', 'rpc_pool_keep_alive',
  'rpc_server_args', 'log_file', 'log_grpc', 'version_check_enabled', 'sid_header_enabled', 'http_health_port', 'http_health_path',
  'nats_options', 'jwt_ttl', 'turbo_streams_ttl', 'streams_ttl',
].map((n) => envNameFor(n)));

const OURS = new Set(FLAGS.map((f) => f.name));

export interface CompatResult {
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly warnings: readonly string[];
}

/** Rewrites anycable-go-only names into our flags (or drops them), returning argv, env and what to warn about. */
export function translateCompat(argv: readonly string[], env: NodeJS.ProcessEnv): CompatResult {
  const warnings: string[] = [];
  const out: string[] = [];
  // Implied flags go first: the last occurrence of a flag wins, so an explicit one overrides them.
  const implied: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) { out.push(arg); continue; }
    const eq = arg.indexOf('=');
    const name = (eq === -1 ? arg.slice(2) : arg.slice(2, eq)).replace(/-/g, '_');
    const renamed = OURS.has(name) ? undefined : RENAMED.get(name);
    const ignored = OURS.has(name) ? undefined : IGNORED.get(name);
    if (!renamed && !ignored) { out.push(arg); continue; }
    // Bools take `=v` or a following true/false; others `=v` or the next argument.
    const next = argv[i + 1];
    const isBool = ignored ? ignored.bool : renamed?.whenTrue !== undefined || name === 'jwt_id_enforce';
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else if (isBool) { value = 'true'; if (next === 'true' || next === 'false') { value = next; i++; } }
    else if (next !== undefined && !next.startsWith('--')) { value = next; i++; }
    if (ignored) {
      warnings.push(`--${name} is ignored: ${ignored.note}`);
      continue;
    }
    if (!renamed) continue;
    warnings.push(`--${name} is anycable-go's deprecated name of --${renamed.to}${renamed.whenTrue ? `=${renamed.whenTrue}` : ''}: read as such`);
    if (value === undefined) { out.push(`--${renamed.to}`); continue; }
    if (renamed.whenTrue !== undefined) {
      if (['true', '1', 'yes'].includes(value.toLowerCase())) out.push(`--${renamed.to}=${renamed.whenTrue}`);
    } else {
      out.push(`--${renamed.to}=${value}`);
    }
    for (const [flag, v] of Object.entries(renamed.implies ?? {})) implied.push(`--${flag}=${v}`);
  }

  const translatedEnv: NodeJS.ProcessEnv = { ...env };
  const ignoredEnv: string[] = [];
  const unknownEnv: string[] = [];
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith('ANYCABLE_') || value === undefined) continue;
    const name = key.slice('ANYCABLE_'.length).toLowerCase();
    if (OURS.has(name) || SILENT_ENV.has(key)) continue;
    const renamed = RENAMED.get(name);
    if (renamed) {
      warnings.push(`${key} is anycable-go's deprecated name of ${envNameFor(renamed.to)}${renamed.whenTrue ? `=${renamed.whenTrue}` : ''}: read as such`);
      const target = envNameFor(renamed.to);
      if (translatedEnv[target] === undefined || translatedEnv[target] === '') {
        if (renamed.whenTrue === undefined) translatedEnv[target] = value;
        else if (['true', '1', 'yes'].includes(value.toLowerCase())) translatedEnv[target] = renamed.whenTrue;
      }
      for (const [flag, v] of Object.entries(renamed.implies ?? {})) translatedEnv[envNameFor(flag)] ??= v;
    } else if (IGNORED.has(name)) {
      ignoredEnv.push(key);
    } else {
      unknownEnv.push(key);
    }
  }
  for (const key of ignoredEnv.sort()) warnings.push(`${key} is ignored: ${IGNORED.get(key.slice('ANYCABLE_'.length).toLowerCase())?.note ?? ''}`);
  if (unknownEnv.length > 0) warnings.push(`unknown ANYCABLE_* environment variables (ignored): ${unknownEnv.sort().join(', ')}`);
  return { argv: [...implied, ...out], env: translatedEnv, warnings };
}
