/**
 * The broker keeps what reliable streams need beyond fan-out: each stream's recent history with
 * positions (epoch + offset), and snapshots of sessions so a client can come back without
 * re-authenticating. Stores are separate roles so others (presence) can sit beside them.
 */

/** Where a message sits in its stream: offsets grow by one per message within an epoch. */
export interface StreamPosition {
  /** Identifies one life of the stream's store: a new epoch means the old offsets mean nothing. */
  readonly epoch: string;
  readonly offset: number;
}

export interface HistoryEntry extends StreamPosition {
  /** The broadcast `data`, as published. */
  readonly data: string;
}

/** Why a history read can't be answered; the client gets reject_history and must reload. */
export type HistoryMiss =
  /** The client's epoch is not the stream's current one (store lost, or never seen). */
  | 'unknown_epoch'
  /** Messages after the client's position are no longer all kept (limit or TTL). */
  | 'evicted'
  /** The client claims a position the stream never reached. */
  | 'offset_ahead'
  /** The store could not be read (broker down). */
  | 'unavailable';

export type HistoryRead =
  | { readonly ok: true; readonly entries: readonly HistoryEntry[] }
  | { readonly ok: false; readonly miss: HistoryMiss };

export interface HistoryStore {
  /**
   * Stores a message and gives it the next position. Calls resolve in the order they were made
   * (the in-memory store answers at once, without a promise, to keep the broadcast path cheap).
   */
  append(stream: string, data: string): StreamPosition | Promise<StreamPosition>;
  /** Messages after `position`, oldest first. */
  readFrom(stream: string, position: StreamPosition): Promise<HistoryRead>;
  /** Messages stored at or after `sinceS` (Unix seconds), oldest first; an unknown stream has none. */
  readSince(stream: string, sinceS: number): Promise<HistoryRead>;
}

/** Session snapshots by sid; the snapshot format belongs to the node (opaque text here). */
export interface SessionStore {
  /** Saves (or replaces) a snapshot; it lives sessions_ttl from now. */
  commit(sid: string, snapshot: string): Promise<void>;
  /** The snapshot, or null when unknown or expired. */
  fetch(sid: string): Promise<string | null>;
}

import type { PresenceStore } from '../presence/presence-store.js';

export type BrokerKind = 'memory' | 'redis' | 'nats';

export interface Broker {
  readonly kind: BrokerKind;
  readonly history: HistoryStore;
  readonly sessions: SessionStore;
  /** Who is on each stream (src/presence). */
  readonly presence: PresenceStore;
  /** Never blocks on an unreachable backend: connections come up in the background. */
  start(): Promise<void>;
  shutdown(): Promise<void>;
  /** False while the backend is unreachable, so broadcasts can't be given positions (health: 503). */
  isReady(): boolean;
}

export interface BrokerOptions {
  /** Messages kept per stream. */
  readonly historyLimit: number;
  /** Seconds a message stays in history. */
  readonly historyTtlS: number;
  /** Seconds a session snapshot lives after its last commit (0 = sessions are not kept). */
  readonly sessionsTtlS: number;
  /** Seconds a presence outlives its session's last sign of life (default 15). */
  readonly presenceTtlS?: number;
}

/** A stream store's metadata lives this many history TTLs after its last message, so offsets continue. */
export const STREAM_META_TTL_FACTOR = 10;
