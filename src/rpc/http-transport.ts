import { RpcError } from '../errors.js';
import { PROTOCOL_VERSIONS } from '../version.js';
import {
  GRPC_DEADLINE_EXCEEDED, GRPC_INVALID_ARGUMENT, GRPC_UNAUTHENTICATED, GRPC_UNAVAILABLE, GRPC_UNKNOWN,
  type RpcMethod, type RpcTransport,
} from './transport.js';

export interface HttpTransportOptions {
  /** e.g. http://localhost:3000/_anycable */
  readonly baseUrl: string;
  readonly secret: string;
  readonly timeoutMs: number;
}

/**
 * HTTP RPC: POST <base>/connect|command|disconnect with the proto messages as snake_case JSON.
 * Statuses map onto gRPC codes so the same retry rules apply (network errors are UNAVAILABLE).
 */
export class HttpTransport implements RpcTransport {
  private readonly base: string;

  constructor(private readonly opts: HttpTransportOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '');
  }

  async call(method: RpcMethod, request: object, sid: string, timeoutMs: number): Promise<unknown> {
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'x-anycable-meta-sid': sid,
      'x-anycable-meta-protov': PROTOCOL_VERSIONS,
    };
    if (this.opts.secret) headers.Authorization = `Bearer ${this.opts.secret}`;
    let response: Response;
    try {
      response = await fetch(`${this.base}/${method.toLowerCase()}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(Math.min(timeoutMs, this.opts.timeoutMs)),
      });
    } catch (err) {
      const timedOut = err instanceof DOMException && err.name === 'TimeoutError';
      throw new RpcError(timedOut ? GRPC_DEADLINE_EXCEEDED : GRPC_UNAVAILABLE, timedOut ? 'http rpc timeout' : 'http rpc unreachable', { cause: err });
    }
    if (response.status === 200) {
      try {
        return (await response.json()) as unknown;
      } catch (err) {
        throw new RpcError(GRPC_UNKNOWN, 'http rpc returned invalid JSON', { cause: err });
      }
    }
    await response.body?.cancel();
    if (response.status === 401) throw new RpcError(GRPC_UNAUTHENTICATED, 'http rpc: unauthorized (check --http_rpc_secret)');
    if (response.status === 400 || response.status === 422) throw new RpcError(GRPC_INVALID_ARGUMENT, `http rpc: ${response.status}`);
    throw new RpcError(GRPC_UNKNOWN, `http rpc: unexpected status ${response.status}`);
  }

  close(): void {}
}
