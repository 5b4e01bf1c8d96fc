/** The effective, validated, frozen configuration. Derived keys are resolved here, once. */
export type DisconnectMode = 'auto' | 'always' | 'never';
export type PubsubKind = 'none' | 'redis' | 'nats';
export type BroadcastAdapterKind = 'http' | 'redis' | 'redisx' | 'nats';
export type BrokerSetting = 'none' | 'memory' | 'redis' | 'nats';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly paths: readonly string[];
  readonly healthPath: string;
  readonly allowedOrigins: readonly string[];
  readonly maxConn: number;
  /** uWS worker threads serving the port as one node (1 = the main thread serves alone). */
  readonly workers: number;
  readonly shutdownTimeoutMs: number;
  readonly sslCert: string;
  readonly sslKey: string;
  readonly pingIntervalS: number;
  readonly maxMessageSize: number;
  readonly wsMaxPendingSize: number;
  /** Bytes of client commands a connection may have waiting for RPC. */
  readonly maxCommandQueueSize: number;
  /** Server-Sent Events endpoint on (--sse) and its path. */
  readonly sse: boolean;
  readonly ssePath: string;

  /** Empty when no secret was given (the CLI may generate one in development). */
  readonly secret: string;
  /** Verification secrets; the first one signs minted tokens. Empty = JWT off. */
  readonly jwtSecrets: readonly string[];
  readonly jwtParam: string;
  readonly enforceJwt: boolean;
  readonly noauth: boolean;
  readonly public: boolean;
  readonly apiKey: string;
  readonly wsApiKey: string;
  readonly usersFile: string;
  readonly tokenTtlS: number;

  readonly rpcHost: string;
  readonly norpc: boolean;
  readonly headers: readonly string[];
  readonly rpcConcurrency: number;
  readonly rpcCommandTimeoutMs: number;
  readonly rpcRequestTimeoutMs: number;
  readonly rpcKeepaliveIntervalS: number;
  readonly httpRpcSecret: string;
  readonly httpRpcTimeoutMs: number;
  readonly disconnectMode: DisconnectMode;
  readonly disconnectRate: number;

  readonly broadcastAdapters: readonly BroadcastAdapterKind[];
  readonly httpBroadcastPath: string;
  /** The node:http API listener's port (0 = any free port); equal to `port` = served on the main port only. */
  readonly httpBroadcastPort: number;
  /** Empty = broadcasts need no key. */
  readonly broadcastKey: string;
  /** Broadcasts without any key: only with --public or --broadcast_key=none (warned at start). */
  readonly broadcastOpen: boolean;
  readonly httpBroadcastMaxBody: number;
  readonly redisUrl: string;
  readonly redisChannel: string;
  readonly redisSentinels: readonly string[];
  readonly redisTlsVerify: boolean;
  readonly redisTlsCaCertPath: string;
  readonly redisTlsClientCertPath: string;
  readonly redisTlsClientKeyPath: string;
  readonly natsServers: readonly string[];
  readonly natsChannel: string;
  readonly redisxStream: string;
  readonly redisxGroup: string;
  readonly pubsub: PubsubKind;

  readonly broker: BrokerSetting;
  readonly historyLimit: number;
  readonly historyTtlS: number;
  readonly sessionsTtlS: number;
  readonly pongTimeoutS: number;
  /** Seconds a closed session's presence lingers before it leaves. */
  readonly presenceTtlS: number;

  readonly publicStreams: boolean;
  readonly streamsSecret: string;
  readonly streamsWhisper: boolean;
  readonly streamsPresence: boolean;
  readonly turboStreams: boolean;
  readonly turboStreamsSecret: string;

  readonly logLevel: LogLevel;
  readonly logFormat: 'text' | 'json';
  readonly metricsHttp: string;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly metricsPrefix: string;
  readonly metricsTags: Readonly<Record<string, string>>;
  readonly metricsLog: boolean;
  readonly metricsRotateIntervalS: number;
}
