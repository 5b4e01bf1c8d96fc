import type { Broker, BrokerKind, HistoryStore, SessionStore } from '../broker/broker.js';
import type { PresenceStore } from '../presence/presence-store.js';
import type { BrokerOp, BrokerOps } from './messages.js';

/** Makes one broker call in the primary thread and resolves with its answer. */
export type BrokerCall = <K extends BrokerOp>(op: K, args: Parameters<BrokerOps[K]>) => ReturnType<BrokerOps[K]>;

/**
 * A worker thread's view of its node's broker: every read and write is made by the primary, so a
 * memory broker is still one store for the whole node and positions are given once.
 */
export class RemoteBroker implements Broker {
  readonly history: HistoryStore;
  readonly sessions: SessionStore;
  readonly presence: PresenceStore;

  constructor(readonly kind: BrokerKind, call: BrokerCall, private readonly ready: () => boolean) {
    this.history = {
      append: () => {
        throw new Error('a worker thread never appends: broadcasts get their positions in the primary thread');
      },
      readFrom: (stream, position) => call('history.readFrom', [stream, position]),
      readSince: (stream, sinceS) => call('history.readSince', [stream, sinceS]),
    };
    this.sessions = {
      commit: (sid, snapshot) => call('sessions.commit', [sid, snapshot]),
      fetch: (sid) => call('sessions.fetch', [sid]),
    };
    this.presence = {
      join: (stream, sid, pid, info) => call('presence.join', [stream, sid, pid, info]),
      leave: (stream, sid) => call('presence.leave', [stream, sid]),
      info: (stream) => call('presence.info', [stream]),
      touch: (keys) => call('presence.touch', [keys]),
      expire: () => call('presence.expire', []),
    };
  }

  /** The primary starts and stops the real broker. */
  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  isReady(): boolean {
    return this.ready();
  }
}

/** The primary's side: runs a worker's broker call on the real broker. */
export function brokerOpsOf(broker: Broker): BrokerOps {
  return {
    'history.readFrom': (stream, position) => broker.history.readFrom(stream, position),
    'history.readSince': (stream, sinceS) => broker.history.readSince(stream, sinceS),
    'sessions.commit': (sid, snapshot) => broker.sessions.commit(sid, snapshot),
    'sessions.fetch': (sid) => broker.sessions.fetch(sid),
    'presence.join': (stream, sid, pid, info) => broker.presence.join(stream, sid, pid, info),
    'presence.leave': (stream, sid) => broker.presence.leave(stream, sid),
    'presence.info': (stream) => broker.presence.info(stream),
    'presence.touch': (keys) => broker.presence.touch(keys),
    'presence.expire': () => broker.presence.expire(),
  };
}
