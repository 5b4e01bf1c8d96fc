/**
 * What a node's primary thread and its worker threads say to each other (structured clone over the
 * worker's port, which keeps order: a reply never overtakes a delivery posted before it).
 */
import type { Publication } from '../broadcast/message.js';
import type { BrokerKind, HistoryRead, StreamPosition } from '../broker/broker.js';
import type { Config } from '../config/config.js';
import type { ExpiredLeave, JoinOutcome, PresenceKey, PresenceSnapshot } from '../presence/presence-store.js';
import type { Counters, GaugeName } from '../metrics/metrics.js';

/** The broker calls a worker makes through its primary; `append` is not here: positions are given once, by the primary. */
export interface BrokerOps {
  'history.readFrom': (stream: string, position: StreamPosition) => Promise<HistoryRead>;
  'history.readSince': (stream: string, sinceS: number) => Promise<HistoryRead>;
  'sessions.commit': (sid: string, snapshot: string) => Promise<void>;
  'sessions.fetch': (sid: string) => Promise<string | null>;
  'presence.join': (stream: string, sid: string, pid: string, info: string) => Promise<JoinOutcome>;
  'presence.leave': (stream: string, sid: string) => Promise<string | null>;
  'presence.info': (stream: string) => Promise<PresenceSnapshot>;
  'presence.touch': (keys: readonly PresenceKey[]) => Promise<void>;
  'presence.expire': () => Promise<readonly ExpiredLeave[]>;
}
export type BrokerOp = keyof BrokerOps;

export interface MetricsSnapshot {
  readonly counters: Counters;
  readonly gauges: Readonly<Record<GaugeName, number>>;
}

/** Worker → primary. */
export type WorkerMessage =
  | { readonly t: 'listening'; readonly port: number }
  | { readonly t: 'start_failed'; readonly error: string; readonly code: string | null }
  | { readonly t: 'stream'; readonly stream: string; readonly followed: boolean }
  /** Identifiers that got their first connection on the worker (+1) or lost their last (-1), in order. */
  | { readonly t: 'identifiers'; readonly changes: readonly (readonly [string, 1 | -1])[] }
  | { readonly t: 'route'; readonly pub: Publication }
  | { readonly t: 'accept'; readonly id: number; readonly pubs: readonly Publication[] }
  | { readonly t: 'broker'; readonly id: number; readonly op: BrokerOp; readonly args: readonly unknown[] }
  | { readonly t: 'render_metrics'; readonly id: number }
  | { readonly t: 'metrics'; readonly id: number; readonly snapshot: MetricsSnapshot }
  | { readonly t: 'crashed'; readonly error: string };

/** Primary → worker. */
export type PrimaryMessage =
  /** Publications in the order the primary accepted them (batched per turn of its loop: one wake-up per batch); broadcasts only of streams the worker may follow. */
  | { readonly t: 'deliver'; readonly pubs: readonly Publication[] }
  | { readonly t: 'reply'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly t: 'reply'; readonly id: number; readonly ok: false; readonly error: string }
  | { readonly t: 'unavailable'; readonly problem: string | null }
  | { readonly t: 'collect_metrics'; readonly id: number }
  | { readonly t: 'shutdown'; readonly deadline: number }
  /** Close every socket now and exit (the process is exiting: a worker with open uWS sockets would abort it). */
  | { readonly t: 'close_now' }
  /** Tests only: throw an uncaught exception in the worker, to show a crashed worker is replaced. */
  | { readonly t: 'crash' };

/** What the primary hands each worker at birth. */
export interface WorkerBirth {
  readonly index: number;
  /** The node's config with the port resolved (port 0 became a real one). */
  readonly config: Config;
  readonly brokerKind: BrokerKind | null;
  /** Shared cells: the RPC slots, and each worker's connection count (see SharedCells). */
  readonly cells: SharedArrayBuffer;
  /** The worker's stream filter (stream-filter.ts): the primary sends a broadcast only to workers that may follow its stream. */
  readonly streams: SharedArrayBuffer;
  readonly unavailable: string | null;
}
