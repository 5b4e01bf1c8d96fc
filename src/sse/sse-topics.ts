import type { TopicSocket } from '../hub/hub.js';
import { encodeEvent } from './sse-encoder.js';

/** What the topic index needs from an SSE connection. */
export interface SseSubscriber {
  readonly unwrap: boolean;
  /** Writes one encoded event (already `\n\n`-terminated). */
  writeEvent(event: string): void;
}

/**
 * The hub's second kind of subscriber: SSE connections are not uWS websockets, so uWS `publish`
 * can't reach them. Topics are the hub's own (stream × identifier, and the ping topic); a frame is
 * encoded as an event at most twice per publish (wrapped and unwrapped), whatever the subscriber count.
 */
export class SseTopics {
  private readonly topics = new Map<string, Set<SseSubscriber>>();

  /** Topics with at least one SSE subscriber: the hub skips this index entirely while it is 0. */
  get size(): number {
    return this.topics.size;
  }

  add(topic: string, subscriber: SseSubscriber): boolean {
    let set = this.topics.get(topic);
    if (!set) this.topics.set(topic, (set = new Set()));
    if (set.has(subscriber)) return false;
    set.add(subscriber);
    return true;
  }

  remove(topic: string, subscriber: SseSubscriber): boolean {
    const set = this.topics.get(topic);
    if (!set?.delete(subscriber)) return false;
    if (set.size === 0) this.topics.delete(topic);
    return true;
  }

  /** Delivers `frame` to every SSE subscriber of `topic` except `exclude` (exclude_socket), in subscription order. */
  publish(topic: string, frame: string, exclude: TopicSocket | SseSubscriber | null): void {
    const set = this.topics.get(topic);
    if (!set) return;
    let wrapped: string | null = null;
    let unwrapped: string | null = null;
    // A write may close a connection, which leaves the set: deleting while iterating a Set is safe.
    for (const subscriber of set) {
      if (subscriber === exclude) continue;
      if (subscriber.unwrap) subscriber.writeEvent(unwrapped ??= encodeEvent(frame, true));
      else subscriber.writeEvent(wrapped ??= encodeEvent(frame, false));
    }
  }
}
