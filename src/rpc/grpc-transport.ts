import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { RpcError } from '../errors.js';
import { PROTOCOL_VERSIONS } from '../version.js';
import { GRPC_UNKNOWN, type RpcMethod, type RpcTransport } from './transport.js';

export const PROTO_PATH = fileURLToPath(new URL('../../../proto/anycable.proto', import.meta.url));

/** proto-loader options: proto field names, numeric enums, defaults filled in. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: Number, defaults: true, oneofs: true };

type UnaryCall = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

type RpcClient = grpc.Client & Record<RpcMethod, UnaryCall>;

export function loadAnycablePackage(): grpc.GrpcObject {
  const definition = protoLoader.loadSync(PROTO_PATH, PROTO_LOADER_OPTIONS);
  const root = grpc.loadPackageDefinition(definition);
  return root.anycable as grpc.GrpcObject;
}

export interface GrpcTransportOptions {
  readonly host: string;
  /** 0 = no keepalive pings (anycable-go's fixed 10 s ping makes Ruby servers answer too_many_pings). */
  readonly keepaliveIntervalS: number;
}

/** One gRPC channel for all calls; reconnects with a short backoff so a restarted app is picked up fast. */
export class GrpcTransport implements RpcTransport {
  private readonly client: RpcClient;

  constructor(opts: GrpcTransportOptions) {
    const Service = loadAnycablePackage().RPC as unknown as new (address: string, creds: grpc.ChannelCredentials, options: grpc.ChannelOptions) => RpcClient;
    const options: grpc.ChannelOptions = {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2000,
      'grpc.enable_retries': 0,
    };
    if (opts.keepaliveIntervalS > 0) {
      options['grpc.keepalive_time_ms'] = opts.keepaliveIntervalS * 1000;
      options['grpc.keepalive_permit_without_calls'] = 0;
    }
    this.client = new Service(opts.host.replace(/^grpc:\/\//, ''), grpc.credentials.createInsecure(), options);
  }

  call(method: RpcMethod, request: object, sid: string, timeoutMs: number): Promise<unknown> {
    const metadata = new grpc.Metadata();
    metadata.set('sid', sid);
    metadata.set('protov', PROTOCOL_VERSIONS);
    return new Promise((resolve, reject) => {
      this.client[method](request, metadata, { deadline: Date.now() + timeoutMs }, (err, response) => {
        if (err) reject(new RpcError(typeof err.code === 'number' ? err.code : GRPC_UNKNOWN, err.details || err.message, { cause: err }));
        else resolve(response);
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
