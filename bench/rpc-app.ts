// A minimal AnyCable RPC app (real gRPC) for the RPC connect scenario: accepts every connection.
import * as grpc from '@grpc/grpc-js';
import { loadAnycablePackage } from '../src/rpc/grpc-transport.js';

const port = Number(process.argv[2] ?? 50061);
const server = new grpc.Server();
const service = (loadAnycablePackage().RPC as unknown as { service: grpc.ServiceDefinition }).service;
server.addService(service, {
  Connect: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    const sid = String(call.metadata.get('sid')[0] ?? '');
    cb(null, { status: 1, identifiers: '{"uid":"bench"}', transmissions: [JSON.stringify({ type: 'welcome', sid })] });
  },
  Command: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { status: 1 }),
  Disconnect: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { status: 1 }),
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) process.exit(1);
  console.log('ready');
});
