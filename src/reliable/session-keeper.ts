import type { Broker } from '../broker/broker.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { restoredWelcomeFrame } from '../protocol/ext-frames.js';
import type { CatchUp } from './catch-up.js';
import type { HistoryClient } from './history-server.js';
import { decodeSnapshot, encodeSnapshot, type SessionSnapshot } from './session-snapshot.js';

/** What keeping and restoring a session needs from it (the node's Session). */
export interface KeptSession extends HistoryClient {
  readonly identifiers: string;
  readonly cstate: Readonly<Record<string, string>>;
  readonly subscriptions: ReadonlyMap<string, { readonly istate: Readonly<Record<string, string>>; readonly streams: ReadonlySet<string> }>;
  usedRpc: boolean;
  patchConnectionState(patch: Readonly<Record<string, string>>): void;
  /** connecting → open; false when the transport went meanwhile. */
  authenticated(identifiers: string): boolean;
  confirmSubscription(identifier: string): boolean;
  patchChannelState(identifier: string, patch: Readonly<Record<string, string>>): void;
  startStreams(identifier: string, streams: readonly string[]): void;
}

export interface SessionKeeperOptions {
  /**
   * After a restore, live messages on the restored streams wait this long for the client's history
   * request (ext clients send it at once): history first, then what came meanwhile, nothing twice.
   */
  readonly restoreHoldMs: number;
  /** Live sessions' snapshots are written again this often, so a node crash leaves them restorable (0 = never). */
  readonly refreshMs: number;
}

/**
 * Session recovery (anycable-go's session cache): snapshots of resumable sessions are committed to
 * the broker after every change, and a client coming back with `?sid=`/X-AnyCable-Restore-Sid gets
 * its identifiers, state and streams back without Connect or channel callbacks.
 */
export class SessionKeeper {
  /** The last snapshot written per live session: refreshed while it lives, written again at its close. */
  private readonly last = new Map<KeptSession, string>();
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly broker: Broker,
    private readonly catchUp: CatchUp,
    private readonly opts: SessionKeeperOptions,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'sessions' });
  }

  /** As anycable-go: live sessions refresh their entry every sessions_ttl / 2. */
  start(): void {
    if (this.opts.refreshMs <= 0) return;
    this.timer = setInterval(() => {
      for (const [session, text] of this.last) this.write(session.sid, text);
    }, this.opts.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * Restores the session saved under `previousSid` into `session`; false (nothing changed) when
   * there is none, so normal authentication follows.
   */
  async restore(session: KeptSession, previousSid: string): Promise<boolean> {
    let snapshot: SessionSnapshot | null = null;
    try {
      const text = await this.broker.sessions.fetch(previousSid);
      snapshot = text === null ? null : decodeSnapshot(text);
    } catch (err) {
      this.log.warn({ err: String(err) }, 'session fetch failed');
    }
    if (snapshot === null) {
      this.metrics.counters.session_restore_misses_total++;
      if (this.log.isLevelEnabled('debug')) this.log.debug({ sid: session.sid }, 'no session to restore');
      return false;
    }
    const restored = snapshot;
    session.usedRpc = restored.usedRpc;
    session.patchConnectionState(restored.cstate);
    let opened = false;
    session.cork(() => {
      if (!session.authenticated(restored.identifiers)) return;
      opened = true;
      const ids: string[] = [];
      for (const sub of restored.subscriptions) {
        if (!session.confirmSubscription(sub.identifier)) continue;
        session.patchChannelState(sub.identifier, sub.istate);
        session.startStreams(sub.identifier, sub.streams);
        for (const stream of sub.streams) {
          const hold = this.catchUp.hold(session, sub.identifier, stream);
          if (hold) this.catchUp.expireLater(hold, this.opts.restoreHoldMs);
        }
        ids.push(sub.identifier);
      }
      session.send(restoredWelcomeFrame(session.sid, ids));
    });
    // The client left while we looked: the identity is recorded, nothing else to do.
    if (!opened) return true;
    this.metrics.counters.sessions_restored_total++;
    this.log.info({ sid: session.sid, from: previousSid, subscriptions: restored.subscriptions.length }, 'session restored');
    this.commit(session);
    return true;
  }

  /** Saves the session's current state under its sid (after connect, subscribe, unsubscribe, state changes). */
  commit(session: KeptSession): void {
    const text = encodeSnapshot({
      identifiers: session.identifiers,
      cstate: session.cstate,
      usedRpc: session.usedRpc,
      subscriptions: [...session.subscriptions].map(([identifier, sub]) => ({ identifier, istate: sub.istate, streams: [...sub.streams] })),
    });
    if (this.last.get(session) === text) return;
    this.last.set(session, text);
    this.write(session.sid, text);
  }

  /** The connection ended: the last snapshot is written again, so it can be restored for sessions_ttl from now. */
  finish(session: KeptSession): void {
    const text = this.last.get(session);
    if (text === undefined) return;
    this.last.delete(session);
    this.write(session.sid, text);
  }

  private write(sid: string, text: string): void {
    this.broker.sessions.commit(sid, text).catch((err: unknown) => this.log.warn({ sid, err: String(err) }, 'session commit failed'));
  }
}
