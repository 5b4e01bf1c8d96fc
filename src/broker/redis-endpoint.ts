import { readFileSync } from 'node:fs';
import type { RedisOptions } from 'ioredis';
import { ConfigError } from '../errors.js';
import type { Config } from '../config/config.js';

/**
 * Where and how to reach Redis, from anycable-go's flags: `--redis_url` (with `--redis_sentinels`, its host
 * is the master name, as anycable-go), `rediss://` for TLS with `--redis_tls_verify` and optional CA and
 * client certificate (mTLS).
 */
export interface RedisEndpoint {
  readonly url: string;
  /** `[:password@]host[:port]` entries; empty = connect to the URL directly. */
  readonly sentinels: readonly string[];
  readonly tls: { readonly verify: boolean; readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
}

/** A bare URL (tests, tools) or a full endpoint. */
export type RedisTarget = string | RedisEndpoint;

export interface RedisTlsFiles {
  readonly verify: boolean;
  readonly caPath: string;
  readonly certPath: string;
  readonly keyPath: string;
}

/** Reads the TLS files now so that a wrong path is a config error at start, naming the flag and file. */
export function redisEndpoint(url: string, sentinels: readonly string[], files: RedisTlsFiles): RedisEndpoint {
  const problems: string[] = [];
  const read = (flag: string, path: string): Buffer | undefined => {
    if (path === '') return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      problems.push(`--${flag}: cannot read "${path}" (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      return undefined;
    }
  };
  const ca = read('redis_tls_ca_cert_path', files.caPath);
  const cert = read('redis_tls_client_cert_path', files.certPath);
  const key = read('redis_tls_client_key_path', files.keyPath);
  if (problems.length > 0) throw new ConfigError(problems);
  return { url, sentinels, tls: { verify: files.verify, ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } };
}

function parseSentinel(entry: string): { host: string; port: number; password: string } {
  const url = new URL(entry.includes('://') ? entry : `redis://${entry}`);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : 26379, password: decodeURIComponent(url.password) };
}

/** ioredis arguments for a target: the URL (when not in sentinel mode) and the options to merge with it. */
export function ioredisArgs(target: RedisTarget): { readonly url: string | null; readonly options: RedisOptions } {
  if (typeof target === 'string') return { url: target, options: {} };
  const secure = /^rediss:\/\//i.test(target.url);
  const tls = secure || target.tls.cert !== undefined
    ? { rejectUnauthorized: target.tls.verify, ...(target.tls.ca ? { ca: target.tls.ca } : {}), ...(target.tls.cert ? { cert: target.tls.cert } : {}), ...(target.tls.key ? { key: target.tls.key } : {}) }
    : undefined;
  if (target.sentinels.length === 0) return { url: target.url, options: tls ? { tls } : {} };
  const master = new URL(target.url);
  const sentinels = target.sentinels.map(parseSentinel);
  const sentinelPassword = sentinels.find((s) => s.password !== '')?.password ?? '';
  const password = decodeURIComponent(master.password) || sentinelPassword;
  const db = Number.parseInt(master.pathname.slice(1) || '0', 10);
  return {
    url: null,
    options: {
      name: master.hostname,
      sentinels: sentinels.map(({ host, port }) => ({ host, port })),
      ...(password ? { password } : {}),
      ...(sentinelPassword ? { sentinelPassword } : {}),
      ...(master.username ? { username: decodeURIComponent(master.username) } : {}),
      ...(Number.isFinite(db) ? { db } : {}),
      ...(tls ? { tls, enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
    },
  };
}

/** Redis with anycable-go's sentinel and TLS options, for every Redis client of the node (pub/sub, broadcasts, broker). */
export function redisTarget(config: Config): RedisTarget {
  return redisEndpoint(config.redisUrl, config.redisSentinels, {
    verify: config.redisTlsVerify, caPath: config.redisTlsCaCertPath, certPath: config.redisTlsClientCertPath, keyPath: config.redisTlsClientKeyPath,
  });
}
