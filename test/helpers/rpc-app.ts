import * as grpc from '@grpc/grpc-js';
import { createServer, type Server as HttpServer } from 'node:http';
import { loadAnycablePackage } from '../../src/rpc/grpc-transport.js';
import { withServer, TEST_SECRET, type TestServer } from './server.js';
import {
  STATUS_ERROR, STATUS_FAILURE, STATUS_SUCCESS,
  type CommandMessage, type CommandResponse, type ConnectionRequest, type ConnectionResponse,
  type DisconnectRequest, type DisconnectResponse,
} from '../../src/rpc/messages.js';

/** A test RPC application: the channels and connection handlers of the anyt scenarios. */
export interface Call {
  readonly method: 'Connect' | 'Command' | 'Disconnect';
  readonly request: ConnectionRequest | CommandMessage | DisconnectRequest;
  readonly sid: string;
  readonly protov: string;
}

const UNAUTHORIZED = '{"type":"disconnect","reason":"unauthorized","reconnect":false}';
const emptyEnv = (): { cstate: Record<string, string>; istate: Record<string, string> } => ({ cstate: {}, istate: {} });

function reply(status: number, fields: Partial<CommandResponse> = {}): CommandResponse {
  return { status: status as CommandResponse['status'], disconnect: false, stop_streams: false, streams: [], transmissions: [], error_msg: '', env: emptyEnv(), stopped_streams: [], presence: null, ...fields };
}

const msg = (identifier: string, message: unknown): string => JSON.stringify({ identifier, message });
const confirm = (identifier: string): string => JSON.stringify({ identifier, type: 'confirm_subscription' });
const reject = (identifier: string): string => JSON.stringify({ identifier, type: 'reject_subscription' });

export class RpcApp {
  readonly calls: Call[] = [];
  /** Publishes a broadcast back to the server under test (set by the test). */
  broadcast: (stream: string, data: unknown) => Promise<void> = async () => undefined;
  /** Extra delay for every call, ms (to test timeouts and shutdown). */
  delayMs = 0;
  /** The host the server under test is reached at; the request_url handler checks it. */
  expectedHost = '';
  disconnectDelayMs = 0;
  /** Calls in the order their answers were sent. */
  readonly answered: Call[] = [];
  /** Awaited before a call is answered: lets a test hold one call while others go on. */
  gate: (call: Call) => Promise<void> = async () => undefined;
  private callWaiters: Array<{ match: (call: Call) => boolean; resolve: (call: Call) => void }> = [];
  private grpcServer: grpc.Server | null = null;
  private httpServer: HttpServer | null = null;
  port = 0;

  connect(req: ConnectionRequest, sid: string): ConnectionResponse {
    const url = new URL(req.env.url);
    const test = url.searchParams.get('test') ?? '';
    const headers = req.env.headers;
    const ok = (identifiers: Record<string, unknown>, cstate: Record<string, string> = {}): ConnectionResponse => ({
      status: STATUS_SUCCESS, identifiers: JSON.stringify(identifiers), transmissions: [JSON.stringify({ type: 'welcome', sid })], error_msg: '', env: { cstate, istate: {} },
    });
    const fail = (transmissions = [UNAUTHORIZED]): ConnectionResponse => ({ status: STATUS_FAILURE, identifiers: '', transmissions, error_msg: '', env: emptyEnv() });
    switch (test) {
      case 'cookies':
        return /username=john green/.test(headers.cookie ?? '') ? ok({ uid: 'john' }) : fail();
      case 'headers':
        return headers['x-api-token'] === 'abc' ? ok({ uid: 'api' }) : fail();
      case 'request_url':
        return url.searchParams.get('test') === 'request_url' && url.host === this.expectedHost ? ok({ uid: url.toString() }) : fail();
      case 'reasons':
        return url.searchParams.get('reason') === 'unauthorized' ? fail() : ok({ uid: 'reasons' });
      case 'uid':
        return ok({ uid: url.searchParams.get('uid') ?? '' });
      case 'error':
        return { status: STATUS_ERROR, identifiers: '', transmissions: [UNAUTHORIZED], error_msg: 'boom', env: emptyEnv() };
      default:
        return ok({ uid: url.searchParams.get('uid') ?? sid }, { token: url.searchParams.get('token') ?? '' });
    }
  }

  async command(req: CommandMessage): Promise<CommandResponse> {
    const id = req.identifier;
    const params = JSON.parse(id) as Record<string, unknown>;
    const channel = String(params.channel);
    const istate = req.env.istate;
    const data = req.data ? (JSON.parse(req.data) as Record<string, unknown>) : {};
    if (req.command === 'subscribe') {
      switch (channel) {
        case 'TransmissionsChannel':
          return reply(STATUS_SUCCESS, { transmissions: [msg(id, 'hello'), msg(id, 'world'), confirm(id)] });
        case 'RejectChannel':
          return reply(STATUS_FAILURE, { transmissions: [reject(id)] });
        case 'ErrorChannel':
          return reply(STATUS_ERROR, { error_msg: 'exception in subscribed' });
        case 'StateChannel':
          return reply(STATUS_SUCCESS, {
            transmissions: [confirm(id)], streams: ['state_counts'],
            env: { cstate: {}, istate: { user: JSON.stringify({ name: params.name }), count: '1', notify: params.notify_disconnect ? '1' : '' } },
          });
        case 'RequestChannel':
          return req.env.cstate.token === 'secret' ? reply(STATUS_SUCCESS, { transmissions: [confirm(id)] }) : reply(STATUS_FAILURE, { transmissions: [reject(id)] });
        case 'PresenceChannel': {
          // anyt presence_tests: the presence stream is followed and named in $p; `join` joins on subscribe.
          const stream = String(params.stream ?? 'presence_a');
          const uid = String((JSON.parse(req.connection_identifiers || '{}') as { uid?: unknown }).uid ?? '');
          const presence = params.join
            ? { type: 'join', id: String(params.presence_id ?? uid), info: JSON.stringify({ name: params.name ?? uid }), ttl: 0 }
            : null;
          return reply(STATUS_SUCCESS, { transmissions: [confirm(id)], streams: [stream], env: { cstate: {}, istate: { $p: stream } }, presence });
        }
        case 'StreamsChannel': {
          const streams = Array.isArray(params.streams) ? (params.streams as string[]) : ['a'];
          return reply(STATUS_SUCCESS, { transmissions: [confirm(id)], streams, env: { cstate: {}, istate: params.whisper ? { $w: streams[0] ?? '' } : {} } });
        }
        default:
          return reply(STATUS_SUCCESS, { transmissions: [confirm(id)] });
      }
    }
    if (req.command === 'unsubscribe') {
      if (channel === 'StateChannel' && istate.notify === '1') {
        const user = JSON.parse(istate.user ?? '{}') as { name?: string };
        await this.broadcast('state_counts', { data: `user left: ${user.name ?? ''}` });
      }
      return reply(STATUS_SUCCESS);
    }
    const action = String(data.action ?? '');
    if (channel === 'PresenceChannel' && (action === 'follow' || action === 'unfollow')) {
      // anyt presence_tests/perform_test: follow joins as "2024" (or data.id), unfollow leaves.
      return reply(STATUS_SUCCESS, {
        presence: action === 'follow'
          ? { type: 'join', id: String(data.id ?? '2024'), info: typeof data.info === 'string' ? data.info : JSON.stringify(data.info ?? { name: 'Vova' }), ttl: 0 }
          : { type: 'leave', id: '', info: '', ttl: 0 },
      });
    }
    switch (action) {
      case 'tick':
        if (channel === 'StateChannel') {
          const count = Number(istate.count ?? '0') + 2;
          const user = JSON.parse(istate.user ?? '{}') as { name?: string };
          return reply(STATUS_SUCCESS, { transmissions: [msg(id, { count, name: user.name })], env: { cstate: {}, istate: { count: String(count) } } });
        }
        return reply(STATUS_SUCCESS, { transmissions: [msg(id, 'tock')] });
      case 'echo':
        return reply(STATUS_SUCCESS, { transmissions: [msg(id, { response: data.text })] });
      case 'unfollow':
        return reply(STATUS_SUCCESS, { stopped_streams: [String(data.name)] });
      case 'stop_all':
        return reply(STATUS_SUCCESS, { stop_streams: true });
      case 'follow':
        return reply(STATUS_SUCCESS, { streams: [String(data.name)] });
      case 'kick':
        return reply(STATUS_SUCCESS, { transmissions: [msg(id, 'bye')], disconnect: true });
      case 'set_cstate':
        return reply(STATUS_SUCCESS, { env: { cstate: { [String(data.key)]: String(data.value ?? '') }, istate: {} } });
      case 'get_cstate':
        return reply(STATUS_SUCCESS, { transmissions: [msg(id, req.env.cstate)] });
      case 'speak':
        await this.broadcast(String(data.stream ?? 'a'), { text: data.text });
        return reply(STATUS_SUCCESS);
      case 'fail':
        return reply(STATUS_ERROR, { error_msg: 'exception in perform' });
      default:
        return reply(STATUS_FAILURE, { error_msg: 'unknown action' });
    }
  }

  async disconnect(req: DisconnectRequest): Promise<DisconnectResponse> {
    if (this.disconnectDelayMs > 0) await new Promise((r) => setTimeout(r, this.disconnectDelayMs));
    for (const identifier of req.subscriptions) {
      const params = JSON.parse(identifier) as Record<string, unknown>;
      if (params.channel === 'LeaveChannel') {
        await this.broadcast(`request_${String(params.room ?? 'a')}`, { data: `user left${params.id === undefined ? '' : String(params.id)}` });
      }
      if (params.channel === 'StateChannel') {
        const state = JSON.parse(req.env.istate[identifier] ?? '{}') as Record<string, string>;
        if (state.notify === '1') {
          const user = JSON.parse(state.user ?? '{}') as { name?: string };
          await this.broadcast('state_counts', { data: `user left: ${user.name ?? ''}` });
        }
      }
    }
    return { status: STATUS_SUCCESS, error_msg: '' };
  }

  private async handle(method: Call['method'], request: unknown, sid: string, protov: string): Promise<unknown> {
    const call: Call = { method, request: request as Call['request'], sid, protov };
    this.calls.push(call);
    this.callWaiters = this.callWaiters.filter((w) => (w.match(call) ? (w.resolve(call), false) : true));
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    await this.gate(call);
    let out: unknown;
    if (method === 'Connect') out = this.connect(request as ConnectionRequest, sid);
    else if (method === 'Command') out = await this.command(request as CommandMessage);
    else out = await this.disconnect(request as DisconnectRequest);
    this.answered.push(call);
    return out;
  }

  /** Resolves with the first call (already made or coming) that matches. */
  waitForCall(match: (call: Call) => boolean): Promise<Call> {
    const seen = this.calls.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.callWaiters.push({ match, resolve }));
  }

  /** Serves the app over real gRPC on `port` (0 = a free one). */
  async listenGrpc(port = 0): Promise<number> {
    const server = new grpc.Server();
    const service = (loadAnycablePackage().RPC as unknown as { service: grpc.ServiceDefinition }).service;
    const unary = (method: Call['method']): grpc.handleUnaryCall<unknown, unknown> => (call, callback) => {
      const meta = (key: string): string => String(call.metadata.get(key)[0] ?? '');
      this.handle(method, call.request, meta('sid'), meta('protov')).then(
        (res) => callback(null, res),
        (err: unknown) => callback({ code: grpc.status.INTERNAL, details: String(err) } as grpc.ServiceError),
      );
    };
    server.addService(service, { Connect: unary('Connect'), Command: unary('Command'), Disconnect: unary('Disconnect') });
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
    });
    this.grpcServer = server;
    return this.port;
  }

  /** Serves the app over HTTP RPC at /_anycable/{connect,command,disconnect}. */
  async listenHttp(secret: string): Promise<number> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.headers.authorization !== `Bearer ${secret}`) { res.writeHead(401).end(); return; }
        const method = ({ connect: 'Connect', command: 'Command', disconnect: 'Disconnect' } as const)[(req.url ?? '').split('/').pop() as 'connect'];
        if (req.method !== 'POST' || !method) { res.writeHead(404).end(); return; }
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
        const env = (body.env ?? {}) as Record<string, unknown>;
        // Default missing fields as a real HTTP RPC server must (the sender omits empty ones).
        const request = { ...body, env: { url: '', headers: {}, cstate: {}, istate: {}, ...env } };
        this.handle(method, request, String(req.headers['x-anycable-meta-sid'] ?? ''), String(req.headers['x-anycable-meta-protov'] ?? '')).then((out) => {
          res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(out));
        });
      });
    });
    this.httpServer = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
    return this.port;
  }

  async stop(): Promise<void> {
    this.grpcServer?.forceShutdown();
    this.grpcServer = null;
    if (this.httpServer) {
      this.httpServer.closeAllConnections();
      await new Promise((r) => this.httpServer?.close(r));
      this.httpServer = null;
    }
  }

  callsOf(method: Call['method']): Call[] {
    return this.calls.filter((c) => c.method === method);
  }
}

/** Runs `body` against a server whose RPC target is a fresh gRPC test app; stops both. */
export async function withRpcApp(args: readonly string[], body: (server: TestServer, app: RpcApp) => Promise<void>): Promise<void> {
  const app = new RpcApp();
  const port = await app.listenGrpc();
  try {
    await withServer(['--secret', TEST_SECRET, '--rpc_host', `127.0.0.1:${port}`, ...args], (server) => body(server, app));
  } finally {
    await app.stop();
  }
}
