export type RpcMethod = 'Connect' | 'Command' | 'Disconnect';

/** gRPC status codes the client logic cares about (HTTP RPC maps onto the same). */
export const GRPC_UNKNOWN = 2;
export const GRPC_INVALID_ARGUMENT = 3;
export const GRPC_DEADLINE_EXCEEDED = 4;
export const GRPC_RESOURCE_EXHAUSTED = 8;
export const GRPC_UNAVAILABLE = 14;
export const GRPC_UNAUTHENTICATED = 16;

/** One attempt of one RPC call. Failures throw RpcError carrying a gRPC code. */
export interface RpcTransport {
  call(method: RpcMethod, request: object, sid: string, timeoutMs: number): Promise<unknown>;
  close(): void;
}
