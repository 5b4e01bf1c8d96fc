import type { Metrics } from '../metrics/metrics.js';
import type { Session } from './session.js';

/** Told when identifiers get their first session here and lose their last (a worker thread tells its node). */
export interface IdentifierEvents {
  present(identifiers: string, present: boolean): void;
}

/**
 * The node's live sessions: by sid (for exclude_socket) and by identifiers (for remote disconnects).
 * A session is here from its transport's open to its transport's close.
 */
export class SessionRegistry implements Iterable<Session> {
  private readonly bySid = new Map<string, Session>();
  private readonly byIdentifiers = new Map<string, Set<Session>>();

  constructor(metrics: Metrics, private readonly events: IdentifierEvents | null = null) {
    metrics.registerGauge('clients_num', () => this.bySid.size);
    metrics.registerGauge('clients_uniq_num', () => this.byIdentifiers.size);
  }

  get size(): number {
    return this.bySid.size;
  }

  [Symbol.iterator](): Iterator<Session> {
    return this.bySid.values();
  }

  add(session: Session): void {
    this.bySid.set(session.sid, session);
  }

  get(sid: string): Session | undefined {
    return this.bySid.get(sid);
  }

  /** Indexes an authenticated session under its identifiers. */
  identify(session: Session): void {
    let set = this.byIdentifiers.get(session.identifiers);
    if (!set) {
      set = new Set();
      this.byIdentifiers.set(session.identifiers, set);
      this.events?.present(session.identifiers, true);
    }
    set.add(session);
  }

  remove(session: Session, wasIdentified: boolean): void {
    this.bySid.delete(session.sid);
    if (!wasIdentified) return;
    const set = this.byIdentifiers.get(session.identifiers);
    if (!set) return;
    set.delete(session);
    if (set.size === 0) {
      this.byIdentifiers.delete(session.identifiers);
      this.events?.present(session.identifiers, false);
    }
  }

  /** A snapshot: closing a session removes it from the live sets. */
  withIdentifiers(identifiers: string): Session[] {
    const set = this.byIdentifiers.get(identifiers);
    return set ? [...set] : [];
  }
}
