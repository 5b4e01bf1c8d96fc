/**
 * Presence: who is on a stream. A session joins a stream's presence under a presence id (pid) with
 * some info; several sessions may share one pid (one user, two tabs) and count once. The store
 * decides when a pid appears (join event due) and when its last session goes (leave event due);
 * the caller broadcasts those events.
 *
 * Every (stream, sid) presence lives `presence_ttl` after its last join or touch: live sessions are
 * touched periodically, a closed one is not, so it leaves once the TTL passes (unless the client
 * came back and joined again meanwhile, which keeps its pid present).
 */

/** One presence member as the info reply lists it. */
export interface PresenceRecord {
  readonly id: string;
  /** JSON text of the info, or '' when the member gave none. */
  readonly info: string;
}

export interface PresenceSnapshot {
  readonly total: number;
  readonly records: readonly PresenceRecord[];
}

/** A (stream, session) presence, the unit of TTL. */
export interface PresenceKey {
  readonly stream: string;
  readonly sid: string;
}

/** A (stream, sid) pair as one string (map key, Redis expiry member): JSON keeps any stream name unambiguous. */
export function pairKey(stream: string, sid: string): string {
  return JSON.stringify([stream, sid]);
}

export type JoinOutcome =
  /** `joined`: the pid is new on the stream, so a join event is due. */
  | { readonly ok: true; readonly joined: boolean }
  /** The session is already present on this stream under another pid (anycable-go: "presence ID mismatch"). */
  | { readonly ok: false; readonly error: 'id_mismatch' };

/** A pid whose last session on `stream` expired: a leave event is due. */
export interface ExpiredLeave {
  readonly stream: string;
  readonly id: string;
}

export interface PresenceStore {
  /** Adds (or refreshes) the session's presence; the info replaces the pid's previous info. */
  join(stream: string, sid: string, pid: string, info: string): Promise<JoinOutcome>;
  /** Removes the session's presence; the pid that left when this was its last session, else null. */
  leave(stream: string, sid: string): Promise<string | null>;
  /** Members of the stream (a pid once, however many sessions it has). */
  info(stream: string): Promise<PresenceSnapshot>;
  /** Keeps these presences for another TTL from now (unknown ones are ignored, never re-created). */
  touch(keys: readonly PresenceKey[]): Promise<void>;
  /** Drops presences whose TTL passed, oldest first, without visiting live ones. */
  expire(): Promise<readonly ExpiredLeave[]>;
}

/** anycable-go's default `--presence_ttl`. */
export const DEFAULT_PRESENCE_TTL_S = 15;
