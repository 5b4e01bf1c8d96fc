/**
 * TypeScript shapes of the RPC messages (proto field names, snake_case), shared by the gRPC and
 * HTTP transports. Responses come in as unknown and are checked by the readers below.
 */
export const STATUS_ERROR = 0;
export const STATUS_SUCCESS = 1;
export const STATUS_FAILURE = 2;
export type RpcStatus = typeof STATUS_ERROR | typeof STATUS_SUCCESS | typeof STATUS_FAILURE;

/** Request side: serialized at once, so the session's own maps go in as they are (no copies). */
export interface Env {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly cstate: Readonly<Record<string, string>>;
  readonly istate: Readonly<Record<string, string>>;
}

export interface EnvResponse {
  cstate: Record<string, string>;
  istate: Record<string, string>;
}

export interface ConnectionRequest {
  env: Env;
}

export interface ConnectionResponse {
  status: RpcStatus;
  identifiers: string;
  transmissions: string[];
  error_msg: string;
  env: EnvResponse;
}

export interface CommandMessage {
  command: string;
  identifier: string;
  connection_identifiers: string;
  data: string;
  env: Env;
}

export interface PresenceResponse {
  type: string;
  id: string;
  info: string;
  ttl: number;
}

export interface CommandResponse {
  status: RpcStatus;
  disconnect: boolean;
  stop_streams: boolean;
  streams: string[];
  transmissions: string[];
  error_msg: string;
  env: EnvResponse;
  stopped_streams: string[];
  presence: PresenceResponse | null;
}

export interface DisconnectRequest {
  identifiers: string;
  subscriptions: string[];
  env: Env;
}

export interface DisconnectResponse {
  status: RpcStatus;
  error_msg: string;
}

// ---- readers: unknown → typed, defaulting missing fields (HTTP RPC peers omit empty ones) ----

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const bool = (v: unknown): boolean => v === true;
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const strMap = (v: unknown): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(obj(v))) if (typeof val === 'string') out[k] = val;
  return out;
};

/** Accepts numeric status (the contract) and enum names (what some JSON encoders emit). */
function status(v: unknown): RpcStatus {
  if (v === 1 || v === 'SUCCESS') return STATUS_SUCCESS;
  if (v === 2 || v === 'FAILURE') return STATUS_FAILURE;
  return STATUS_ERROR;
}

function envResponse(v: unknown): EnvResponse {
  const o = obj(v);
  return { cstate: strMap(o.cstate), istate: strMap(o.istate) };
}

export function readConnectionResponse(v: unknown): ConnectionResponse {
  const o = obj(v);
  return { status: status(o.status), identifiers: str(o.identifiers), transmissions: strs(o.transmissions), error_msg: str(o.error_msg), env: envResponse(o.env) };
}

export function readCommandResponse(v: unknown): CommandResponse {
  const o = obj(v);
  const p = o.presence === undefined || o.presence === null ? null : obj(o.presence);
  return {
    status: status(o.status),
    disconnect: bool(o.disconnect),
    stop_streams: bool(o.stop_streams),
    streams: strs(o.streams),
    transmissions: strs(o.transmissions),
    error_msg: str(o.error_msg),
    env: envResponse(o.env),
    stopped_streams: strs(o.stopped_streams),
    presence: p ? { type: str(p.type), id: str(p.id), info: str(p.info), ttl: typeof p.ttl === 'number' ? p.ttl : 0 } : null,
  };
}

export function readDisconnectResponse(v: unknown): DisconnectResponse {
  const o = obj(v);
  return { status: status(o.status), error_msg: str(o.error_msg) };
}
