import type { StreamPosition } from '../broker/broker.js';
import type { TopicSocket } from '../hub/hub.js';
import { positionedMessageFrame } from '../protocol/ext-frames.js';
import { messageFramePrefix } from '../protocol/messages.js';
import { presenceFramePrefix } from '../presence/presence-frames.js';

/** What catching up needs from a session. */
export interface CatchUpClient {
  readonly sid: string;
  /** Null once the connection is gone. */
  readonly liveSocket: TopicSocket | null;
  send(frame: string): boolean;
}

/** Takes a socket out of a (stream, identifier) topic and puts it back, keeping the hub's count. */
export interface TopicGate {
  hold(socket: TopicSocket, stream: string, identifier: string): void;
  /** `live` false: the connection is gone, only forget it. */
  release(socket: TopicSocket, stream: string, identifier: string, live: boolean): void;
}

interface Buffered {
  /** Valid JSON text (the broadcast parser normalised it): framed as it is. */
  readonly data: string;
  readonly position: StreamPosition | null;
  /** A presence event (`data` is its JSON), framed as presence when sent. */
  readonly presence?: true;
}

/** Live messages kept per held stream; past this the hold ends early (the client gets each message once, older history after newer live ones). */
const MAX_BUFFERED = 1000;

/**
 * One (session, identifier, stream) whose live messages are held back while its history is read, so
 * the client gets history first, then what arrived meanwhile, each message once.
 */
export class Hold {
  readonly buffer: Buffered[] = [];
  /** Requests using this hold; it ends when the last one is done. */
  users = 1;
  /** Set for holds made at restore, which end on their own unless a history request takes them over. */
  timer: NodeJS.Timeout | null = null;
  /** Highest position the client is known to have (from history it got or positions it sent). */
  watermark: StreamPosition | null = null;
  /**
   * Set when the hold ended early (buffer full): from this position on the client got every message
   * live, so history still being read sends only what lies before it (late, but once).
   */
  liveFrom: StreamPosition | null = null;
  /**
   * Set when an earlier restore hold of this subscription ran out before the client asked for history:
   * from this position on the client got every message live, so history does not send them again.
   */
  deliveredLiveFrom: StreamPosition | null = null;
  /** Ended by its restore timer (no history request came in time). */
  expired = false;

  constructor(readonly client: CatchUpClient, readonly socket: TopicSocket, readonly identifier: string, readonly stream: string) {}

  /** True when a history entry need not be sent: the client has it, or got it live after an expired restore hold. */
  historyHas(position: StreamPosition): boolean {
    return this.covers(position) || atOrAfter(position, this.deliveredLiveFrom);
  }

  /** True when the client already has this message. */
  covers(position: StreamPosition | null): boolean {
    if (position === null) return false;
    const w = this.watermark;
    if (w !== null && position.epoch === w.epoch && position.offset <= w.offset) return true;
    return atOrAfter(position, this.liveFrom);
  }

  raise(position: StreamPosition): void {
    const w = this.watermark;
    if (w === null || w.epoch !== position.epoch || position.offset > w.offset) this.watermark = position;
  }
}

/** True when `position` lies at or after `start` in the same epoch. */
function atOrAfter(position: StreamPosition, start: StreamPosition | null): boolean {
  return start !== null && position.epoch === start.epoch && position.offset >= start.offset;
}

/** What an expired restore hold leaves for the history request that comes late. */
interface AfterExpiry {
  readonly sid: string;
  readonly stream: string;
  /** The first message the client got live after the hold ran out; null until one comes. */
  liveFrom: StreamPosition | null;
  readonly at: number;
}

/** How long a late history request is remembered for (far longer than any client waits to send it). */
const AFTER_EXPIRY_MS = 60_000;

/**
 * The registry of holds. The node tells it about every broadcast it delivers; while a stream has
 * holds, their sessions' copies are buffered here instead of reaching the socket through the topic.
 */
export class CatchUp {
  private readonly byStream = new Map<string, Set<Hold>>();
  private readonly byKey = new Map<string, Hold>();
  /** Subscriptions whose restore hold ran out, by hold key. */
  private readonly afterExpiry = new Map<string, AfterExpiry>();
  /** Stream → entries of afterExpiry still waiting for their first live message. */
  private readonly awaitingLive = new Map<string, Set<AfterExpiry>>();

  constructor(private readonly gate: TopicGate) {}

  private key(client: CatchUpClient, identifier: string, stream: string): string {
    return JSON.stringify([client.sid, identifier, stream]);
  }

  /** Holds (or joins the hold of) a stream; null when the connection is gone. */
  hold(client: CatchUpClient, identifier: string, stream: string): Hold | null {
    const socket = client.liveSocket;
    if (socket === null) return null;
    const key = this.key(client, identifier, stream);
    const existing = this.byKey.get(key);
    if (existing) {
      existing.users++;
      return existing;
    }
    const hold = new Hold(client, socket, identifier, stream);
    const prior = this.takeAfterExpiry(key);
    if (prior?.liveFrom) hold.deliveredLiveFrom = prior.liveFrom;
    this.byKey.set(key, hold);
    let set = this.byStream.get(stream);
    if (!set) this.byStream.set(stream, (set = new Set()));
    set.add(hold);
    this.gate.hold(socket, stream, identifier);
    return hold;
  }

  /** A hold made at restore ends by itself after `ms` unless a history request takes it over. */
  expireLater(hold: Hold, ms: number): void {
    hold.timer = setTimeout(() => {
      hold.timer = null;
      hold.expired = true;
      this.release(hold);
    }, ms);
    hold.timer.unref();
  }

  /** A history request takes over a restore hold: the timer goes, the request's release ends it. */
  adopt(hold: Hold): void {
    if (hold.timer === null) return;
    clearTimeout(hold.timer);
    hold.timer = null;
    hold.users--;
  }

  get active(): boolean {
    return this.byKey.size > 0;
  }

  /** Called for every broadcast this node delivers, before the hub sends it to the topic. */
  onBroadcast(stream: string, data: string, position: StreamPosition | null, excludeSid: string | null): void {
    if (position !== null && this.awaitingLive.size > 0) this.noteLive(stream, position, excludeSid);
    this.buffer(stream, { data, position }, excludeSid);
  }

  /** The first positioned message after an expired restore hold marks where the client's live copy begins. */
  private noteLive(stream: string, position: StreamPosition, excludeSid: string | null): void {
    const waiting = this.awaitingLive.get(stream);
    if (!waiting) return;
    for (const entry of waiting) {
      if (entry.sid === excludeSid) continue;
      entry.liveFrom = position;
      waiting.delete(entry);
    }
    if (waiting.size === 0) this.awaitingLive.delete(stream);
  }

  private takeAfterExpiry(key: string): AfterExpiry | undefined {
    const entry = this.afterExpiry.get(key);
    if (entry === undefined) return undefined;
    this.afterExpiry.delete(key);
    const waiting = this.awaitingLive.get(entry.stream);
    if (waiting?.delete(entry) && waiting.size === 0) this.awaitingLive.delete(entry.stream);
    return entry;
  }

  /** Remembers where an expired restore hold's client started getting messages live; old entries go. */
  private rememberExpiry(key: string, hold: Hold, firstSent: StreamPosition | null): void {
    const now = Date.now();
    if (this.afterExpiry.size >= 256) {
      for (const [k, e] of this.afterExpiry) if (now - e.at > AFTER_EXPIRY_MS) this.takeAfterExpiry(k);
    }
    const entry: AfterExpiry = { sid: hold.client.sid, stream: hold.stream, liveFrom: firstSent, at: now };
    this.afterExpiry.set(key, entry);
    if (firstSent === null) {
      let waiting = this.awaitingLive.get(hold.stream);
      if (!waiting) this.awaitingLive.set(hold.stream, waiting = new Set());
      waiting.add(entry);
    }
  }

  /** Presence events for held sessions wait with their live messages, in the same order. */
  onPresence(stream: string, eventJson: string): void {
    this.buffer(stream, { data: eventJson, position: null, presence: true }, null);
  }

  private buffer(stream: string, entry: Buffered, excludeSid: string | null): void {
    const holds = this.byStream.get(stream);
    if (!holds) return;
    for (const hold of [...holds]) {
      if (excludeSid !== null && hold.client.sid === excludeSid) continue;
      if (hold.buffer.length >= MAX_BUFFERED) {
        // Full: flush and reopen the topic; the hub then sends this entry through it, once.
        this.end(hold, { at: entry.position });
        continue;
      }
      hold.buffer.push(entry);
    }
  }

  /** One user is done; the last one sends what was buffered (minus what the client has) and reopens the topic. */
  release(hold: Hold): void {
    if (--hold.users > 0) return;
    this.end(hold);
  }

  /** `overflow`: the hold ended early at the broadcast positioned `at`, which goes out through the topic. */
  private end(hold: Hold, overflow: { readonly at: StreamPosition | null } | null = null): void {
    const key = this.key(hold.client, hold.identifier, hold.stream);
    if (this.byKey.get(key) !== hold) return;
    this.byKey.delete(key);
    const set = this.byStream.get(hold.stream);
    set?.delete(hold);
    if (set?.size === 0) this.byStream.delete(hold.stream);
    if (hold.timer !== null) clearTimeout(hold.timer);
    if (hold.client.liveSocket !== hold.socket) {
      this.gate.release(hold.socket, hold.stream, hold.identifier, false);
      return;
    }
    let firstSent: StreamPosition | null = null;
    for (const entry of hold.buffer.splice(0)) {
      if (entry.presence) {
        hold.client.send(`${presenceFramePrefix(hold.identifier)}${entry.data}}`);
        continue;
      }
      if (hold.covers(entry.position)) continue;
      if (firstSent === null && entry.position !== null) firstSent = entry.position;
      hold.client.send(entry.position
        ? positionedMessageFrame(hold.identifier, hold.stream, entry.data, entry.position)
        : `${messageFramePrefix(hold.identifier)}${entry.data}}`);
    }
    if (overflow !== null) hold.liveFrom = firstSent ?? overflow.at;
    // A history request coming after its restore hold ran out must not send again what went out live.
    else if (hold.expired) this.rememberExpiry(key, hold, firstSent);
    this.gate.release(hold.socket, hold.stream, hold.identifier, true);
  }
}

