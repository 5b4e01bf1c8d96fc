import { availableParallelism } from 'node:os';
import { ConfigError } from '../errors.js';
import { deriveKey } from '../auth/keys.js';
import { maskValue } from '../logging/mask.js';
import { FLAGS, envNameFor, type FlagSpec } from './flags.js';
import type { BroadcastAdapterKind, BrokerSetting, Config, DisconnectMode, LogLevel, PubsubKind } from './config.js';
import { presetDefaults } from './presets.js';
import { translateCompat } from './compat.js';
import { platformPresetDefaults, presetNames } from './platform-presets.js';

export interface CliRequest {
  readonly config: Config;
  readonly help: boolean;
  readonly printConfig: boolean;
  /** To log at start: deprecated anycable-go names read, options ignored, unknown ANYCABLE_* env vars, presets applied. */
  readonly warnings: readonly string[];
  /** The effective value of every flag (given, preset or default), by flag name: what --print-config shows. */
  readonly flagValues: ReadonlyMap<string, FlagValue>;
}

const FLAG_BY_NAME = new Map(FLAGS.map((f) => [f.name, f]));

/** Reads flags as `--name=value`, `--name value` or a bare `--bool`; dashes and underscores are the same. */
function parseArgv(argv: readonly string[], problems: string[]): { values: Map<string, string>; help: boolean; printConfig: boolean } {
  const values = new Map<string, string>();
  let help = false;
  let printConfig = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '-h' || arg === '--help') { help = true; continue; }
    if (!arg.startsWith('--')) { problems.push(`unexpected argument "${arg}"`); continue; }
    const eq = arg.indexOf('=');
    const name = (eq === -1 ? arg.slice(2) : arg.slice(2, eq)).replace(/-/g, '_');
    if (name === 'print_config') { printConfig = true; continue; }
    const spec = FLAG_BY_NAME.get(name);
    if (!spec) { problems.push(`unknown flag --${name}`); continue; }
    if (eq !== -1) { values.set(name, arg.slice(eq + 1)); continue; }
    const next = argv[i + 1];
    if (spec.kind === 'bool') {
      // A bare bool flag means true; an explicit following true/false is taken too.
      if (next === 'true' || next === 'false') { values.set(name, next); i++; } else values.set(name, 'true');
      continue;
    }
    if (next === undefined || next.startsWith('--')) {
      if (spec.bare !== undefined) values.set(name, spec.bare);
      else problems.push(`flag --${name} needs a value`);
      continue;
    }
    values.set(name, next);
    i++;
  }
  return { values, help, printConfig };
}

/** The value given by flag or env, or undefined when the user left it alone. */
function givenValue(spec: FlagSpec, argvValues: Map<string, string>, env: NodeJS.ProcessEnv): string | undefined {
  const fromArgv = argvValues.get(spec.name);
  if (fromArgv !== undefined) return fromArgv;
  for (const envName of [envNameFor(spec.name), ...(spec.envAliases ?? [])]) {
    const v = env[envName];
    if (v !== undefined && v !== '') return v;
  }
  return undefined;
}

function list(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

type Typed = string | number | boolean | string[];
export type FlagValue = Typed;

function typedValue(spec: FlagSpec, raw: string, problems: string[]): Typed {
  switch (spec.kind) {
    case 'string':
      return raw;
    case 'bool': {
      const v = raw.toLowerCase();
      if (['true', '1', 'yes'].includes(v)) return true;
      if (['false', '0', 'no', ''].includes(v)) return false;
      problems.push(`--${spec.name}: "${raw}" is not a boolean`);
      return false;
    }
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) { problems.push(`--${spec.name}: "${raw}" is not an integer`); return 0; }
      const n = Number.parseInt(raw, 10);
      if (spec.min !== undefined && n < spec.min) problems.push(`--${spec.name}: ${n} is below the minimum ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) problems.push(`--${spec.name}: ${n} is above the maximum ${spec.max}`);
      return n;
    }
    case 'enum': {
      if (!spec.values?.includes(raw)) problems.push(`--${spec.name}: "${raw}" is not one of ${spec.values?.join(', ')}`);
      return raw;
    }
    case 'list': {
      const items = list(raw);
      if (spec.values) {
        for (const item of items) if (!spec.values.includes(item)) problems.push(`--${spec.name}: "${item}" is not one of ${spec.values.join(', ')}`);
      }
      return items;
    }
  }
}

function parseTags(items: readonly string[], problems: string[]): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const item of items) {
    const idx = item.indexOf(':');
    const key = idx > 0 ? item.slice(0, idx) : '';
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(key)) { problems.push(`--metrics_tags: "${item}" is not key:value`); continue; }
    tags[key] = item.slice(idx + 1);
  }
  return tags;
}

/** Defaults < env < flags. Throws ConfigError listing every problem. */
export function loadConfig(rawArgv: readonly string[], rawEnv: NodeJS.ProcessEnv): CliRequest {
  const problems: string[] = [];
  const { argv, env, warnings } = translateCompat(rawArgv, rawEnv);
  const { values, help, printConfig } = parseArgv(argv, problems);
  const given = new Map<string, string>();
  for (const spec of FLAGS) {
    const value = givenValue(spec, values, env);
    if (value !== undefined) given.set(spec.name, value);
  }
  // Presets change defaults only: what the user set explicitly still wins.
  const chosenPresets = presetNames(given.get('presets'), env);
  const presets = new Map([...platformPresetDefaults(chosenPresets, given, env), ...presetDefaults(chosenPresets, given)]);
  const v = new Map<string, Typed>();
  for (const spec of FLAGS) v.set(spec.name, typedValue(spec, given.get(spec.name) ?? presets.get(spec.name) ?? spec.default, problems));

  const str = (n: string): string => String(v.get(n) ?? '');
  const int = (n: string): number => Number(v.get(n) ?? 0);
  const bool = (n: string): boolean => v.get(n) === true;
  const strs = (n: string): string[] => { const x = v.get(n); return Array.isArray(x) ? x : []; };

  const secret = str('secret') === 'none' ? '' : str('secret');
  const isPublic = bool('public');
  const jwtSecrets = list(str('jwt_secret') || secret);
  const rawBroadcastKey = str('broadcast_key');
  const broadcastKey = rawBroadcastKey === 'none' || (isPublic && rawBroadcastKey === '')
    ? ''
    : rawBroadcastKey || (secret ? deriveKey(secret, 'broadcast-cable') : '');
  const streamsSecret = str('streams_secret') || secret;

  const paths = strs('path');
  for (const p of paths) if (!p.startsWith('/')) problems.push(`--path: "${p}" must start with /`);
  if (paths.length === 0) problems.push('--path: at least one path is needed');
  for (const name of ['health_path', 'http_broadcast_path', 'sse_path'] as const) {
    if (!str(name).startsWith('/')) problems.push(`--${name}: "${str(name)}" must start with /`);
  }
  if (str('metrics_http') && !str('metrics_http').startsWith('/')) problems.push(`--metrics_http: "${str('metrics_http')}" must start with /`);
  if ((str('ssl_cert') === '') !== (str('ssl_key') === '')) problems.push('--ssl_cert and --ssl_key go together');
  if (!/^[A-Za-z0-9_-]+$/.test(str('jwt_param'))) problems.push(`--jwt_param: "${str('jwt_param')}" is not a valid parameter name`);
  const broker = str('broker') as BrokerSetting;
  const adapters = strs('broadcast_adapter') as BroadcastAdapterKind[];
  // As anycable-go: a shared broker or redisx needs pub/sub between nodes, so it is switched on unless chosen.
  let pubsub = str('pubsub') as PubsubKind;
  if (!given.has('pubsub') && !presets.has('pubsub')) {
    if (broker === 'redis' || adapters.includes('redisx')) pubsub = 'redis';
    else if (broker === 'nats') pubsub = 'nats';
  }
  if ((broker === 'redis' || broker === 'nats') && (adapters.includes('redis') || adapters.includes('nats'))) {
    problems.push(`--broadcast_adapter: redis and nats deliver every broadcast to every node, which would store it once per node with --broker ${broker}; use http or redisx`);
  }
  if ((str('redis_tls_client_cert_path') === '') !== (str('redis_tls_client_key_path') === '')) {
    problems.push('--redis_tls_client_cert_path and --redis_tls_client_key_path go together');
  }
  if (int('metrics_port') !== 0 && int('metrics_port') === int('http_broadcast_port')) {
    problems.push(`--metrics_port and --http_broadcast_port are both ${int('metrics_port')}: give them different ports`);
  }
  const metricsTags = parseTags(strs('metrics_tags'), problems);
  const workers = parseWorkers(str('workers'), problems);

  if (problems.length > 0) throw new ConfigError(problems);

  const config: Config = {
    host: str('host'),
    port: int('port'),
    paths,
    healthPath: str('health_path'),
    allowedOrigins: strs('allowed_origins').map((o) => o.toLowerCase()),
    maxConn: int('max_conn'),
    workers,
    shutdownTimeoutMs: int('shutdown_timeout') * 1000,
    sslCert: str('ssl_cert'),
    sslKey: str('ssl_key'),
    pingIntervalS: int('ping_interval'),
    maxMessageSize: int('max_message_size'),
    wsMaxPendingSize: int('ws_max_pending_size'),
    maxCommandQueueSize: int('max_command_queue_size'),
    sse: bool('sse'),
    ssePath: str('sse_path'),
    secret,
    jwtSecrets,
    jwtParam: str('jwt_param'),
    enforceJwt: bool('enforce_jwt'),
    noauth: bool('noauth') || isPublic,
    public: isPublic,
    apiKey: str('api_key') || (secret ? deriveKey(secret, 'api-cable') : ''),
    wsApiKey: str('ws_api_key'),
    usersFile: str('users_file'),
    tokenTtlS: int('token_ttl'),
    rpcHost: str('rpc_host'),
    norpc: bool('norpc'),
    headers: strs('headers').map((h) => h.toLowerCase()),
    rpcConcurrency: int('rpc_concurrency'),
    rpcCommandTimeoutMs: int('rpc_command_timeout'),
    rpcRequestTimeoutMs: int('rpc_request_timeout'),
    rpcKeepaliveIntervalS: int('rpc_keepalive_interval'),
    httpRpcSecret: str('http_rpc_secret') || (secret ? deriveKey(secret, 'rpc-cable') : ''),
    httpRpcTimeoutMs: int('http_rpc_timeout'),
    disconnectMode: str('disconnect_mode') as DisconnectMode,
    disconnectRate: int('disconnect_rate'),
    broadcastAdapters: adapters,
    httpBroadcastPath: str('http_broadcast_path'),
    httpBroadcastPort: int('http_broadcast_port'),
    broadcastKey,
    broadcastOpen: isPublic ? rawBroadcastKey === '' || rawBroadcastKey === 'none' : rawBroadcastKey === 'none',
    httpBroadcastMaxBody: int('http_broadcast_max_body'),
    redisUrl: str('redis_url'),
    redisChannel: str('redis_channel'),
    redisSentinels: strs('redis_sentinels'),
    redisTlsVerify: bool('redis_tls_verify'),
    redisTlsCaCertPath: str('redis_tls_ca_cert_path'),
    redisTlsClientCertPath: str('redis_tls_client_cert_path'),
    redisTlsClientKeyPath: str('redis_tls_client_key_path'),
    natsServers: list(str('nats_servers')),
    natsChannel: str('nats_channel'),
    redisxStream: str('redisx_stream'),
    redisxGroup: str('redisx_group'),
    pubsub,
    broker,
    historyLimit: int('history_limit'),
    historyTtlS: int('history_ttl'),
    sessionsTtlS: int('sessions_ttl'),
    pongTimeoutS: int('pong_timeout'),
    presenceTtlS: int('presence_ttl'),
    publicStreams: bool('public_streams') || isPublic,
    streamsSecret,
    streamsWhisper: bool('streams_whisper'),
    streamsPresence: bool('streams_presence'),
    turboStreams: bool('turbo_streams'),
    turboStreamsSecret: str('turbo_streams_secret') || streamsSecret,
    logLevel: bool('debug') ? 'debug' : (str('log_level') as LogLevel),
    logFormat: str('log_format') === 'json' ? 'json' : 'text',
    metricsHttp: str('metrics_http'),
    metricsHost: str('metrics_host'),
    metricsPort: int('metrics_port'),
    metricsPrefix: str('metrics_prefix'),
    metricsTags,
    metricsLog: bool('metrics_log'),
    metricsRotateIntervalS: int('metrics_rotate_interval'),
  };
  const presetNote = chosenPresets.filter((p) => p !== 'none');
  const notes = presetNote.length > 0 && given.get('presets') === undefined ? [`presets detected from the environment: ${presetNote.join(', ')} (--presets=none turns them off)`] : [];
  return { config: deepFreeze(config), help, printConfig, warnings: [...warnings, ...notes], flagValues: v };
}

/** A copy of the config with a new secret, derived keys recomputed where they were derived. */
export function withGeneratedSecret(config: Config, secret: string): Config {
  return deepFreeze({
    ...config,
    secret,
    jwtSecrets: config.jwtSecrets.length > 0 ? config.jwtSecrets : [secret],
    broadcastKey: config.broadcastOpen ? '' : config.broadcastKey || deriveKey(secret, 'broadcast-cable'),
    apiKey: config.apiKey || deriveKey(secret, 'api-cable'),
    httpRpcSecret: config.httpRpcSecret || deriveKey(secret, 'rpc-cable'),
    streamsSecret: config.streamsSecret || secret,
    turboStreamsSecret: config.turboStreamsSecret || secret,
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

export function helpText(): string {
  const lines = ['Usage: cablecat [options]', '       cablecat hash-password   (reads a password from stdin, prints a users_file line hash)', '       cablecat healthcheck     (GET the health path of the running server, for Docker HEALTHCHECK; exit 0/1)', ''];
  let group = '';
  for (const f of FLAGS) {
    if (f.group !== group) { group = f.group; lines.push(`${group.toUpperCase()}:`); }
    const env = [envNameFor(f.name), ...(f.envAliases ?? [])].join(', ');
    const def = f.default === '' ? '' : ` (default: ${f.default})`;
    lines.push(`  --${f.name.padEnd(26)} ${f.help}${def} [${env}]`);
  }
  lines.push('', '  --print-config               Print the effective configuration (secrets masked) and exit', '  -v, --version                Print the version, the runtime and the uWebSockets.js binary in use, and exit',
    '  -h, --help                   Show this help');
  return lines.join('\n');
}

/**
 * --print-config: every flag by its name (as the user writes it in flags and ANYCABLE_* env), with its
 * effective value; secret flags masked, credentials in URLs redacted.
 */
export function printableConfig(flagValues: ReadonlyMap<string, FlagValue>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of FLAGS) {
    const val = flagValues.get(spec.name);
    if (spec.secret) out[spec.name] = val === '' || val === undefined ? '' : '******';
    // Sentinel entries carry a password as `:password@host:port`, without the `//` of a URL.
    else if (spec.name === 'redis_sentinels' && Array.isArray(val)) out[spec.name] = val.map((entry) => entry.replace(/^[^@]*@/, '******@'));
    // `//user:password@host` in URLs (Redis, NATS, RPC) shows as `//******@host`.
    else out[spec.name] = maskValue(val);
  }
  return out;
}

/** Most worker threads a node takes: past the core count they only add switching. */
export const MAX_WORKERS = 256;

/** `--workers`: a count, or `auto` for one per core. */
function parseWorkers(value: string, problems: string[]): number {
  // auto off Linux is one thread: workers could not share the port there (see below).
  const cores = process.platform === 'linux' ? availableParallelism() : 1;
  const n = value === 'auto' ? Math.min(MAX_WORKERS, Math.max(1, cores)) : /^[0-9]+$/.test(value) ? Number(value) : 0;
  if (n >= 1 && n <= MAX_WORKERS) {
    // The kernel's SO_REUSEPORT balancing is what spreads connections over the workers; elsewhere one would take them all.
    if (n > 1 && process.platform !== 'linux') {
      problems.push(`--workers: ${value} needs Linux (workers share the port through SO_REUSEPORT load balancing); on ${process.platform} run one process per core behind a load balancer`);
    }
    return n;
  }
  problems.push(`--workers: "${value}" must be auto or a number from 1 to ${MAX_WORKERS}`);
  return 1;
}
