import type { Metrics } from '../metrics/metrics.js';
import { messageFramePrefix } from '../protocol/messages.js';
import { positionSuffix } from '../protocol/ext-frames.js';
import type { StreamPosition } from '../broker/broker.js';
import { presenceFramePrefix } from '../presence/presence-frames.js';

/** The two things the hub needs from a socket; uWS WebSocket satisfies it. */
export interface TopicSocket {
  subscribe(topic: string): boolean;
  unsubscribe(topic: string): boolean;
  isSubscribed(topic: string): boolean;
  publish(topic: string, message: string): boolean;
}

/** The app-wide publish of uWS: copies the bytes to every subscriber in native code. */
export interface TopicPublisher {
  publish(topic: string, message: string): boolean;
}

interface Route {
  /** uWS topic for this (stream, identifier) pair. */
  readonly topic: string;
  /** `{"identifier":…,"message":` built once per route, not per broadcast. */
  readonly framePrefix: string;
  /** Its UTF-8 length, so the byte counter needs no per-frame measurement. */
  readonly framePrefixBytes: number;
  count: number;
  /** Subscribers taken out of the topic while they catch up on history; they still count. */
  held: Set<TopicSocket> | null;
}

/** Subscribers uWS can't reach (SSE connections); the hub publishes to them after the native publish. */
export interface SecondaryTopics {
  /** Topics with subscribers; 0 = nothing to do. */
  readonly size: number;
  publish(topic: string, frame: string, exclude: TopicSocket | null): void;
}

export interface HubEvents {
  /** The first subscriber of a stream arrived on this node (multi-node pub/sub subscribes). */
  onStreamAdded(stream: string): void;
  /** The last subscriber left. */
  onStreamRemoved(stream: string): void;
}

/**
 * stream → (channel identifier → route). A broadcast encodes one frame per (stream, identifier)
 * and hands it to uWS `publish`; the copy to each socket happens in native code, in order.
 */
export class Hub {
  private readonly streams = new Map<string, Map<string, Route>>();

  constructor(
    private readonly publisher: TopicPublisher,
    private readonly metrics: Metrics,
    private readonly events: HubEvents,
    private readonly secondary: SecondaryTopics | null = null,
  ) {
    metrics.registerGauge('broadcast_streams_num', () => this.streams.size);
  }

  subscribe(socket: TopicSocket, stream: string, identifier: string): void {
    let routes = this.streams.get(stream);
    const isNewStream = routes === undefined;
    if (!routes) {
      routes = new Map();
      this.streams.set(stream, routes);
    }
    let route = routes.get(identifier);
    if (!route) {
      const framePrefix = messageFramePrefix(identifier);
      route = { topic: JSON.stringify([stream, identifier]), framePrefix, framePrefixBytes: Buffer.byteLength(framePrefix), count: 0, held: null };
      routes.set(identifier, route);
    }
    if (socket.subscribe(route.topic)) route.count++;
    if (isNewStream) this.events.onStreamAdded(stream);
  }

  /** `socket` is null when the connection is already closed (uWS dropped its topics itself). */
  unsubscribe(socket: TopicSocket | null, stream: string, identifier: string): void {
    const routes = this.streams.get(stream);
    const route = routes?.get(identifier);
    if (!routes || !route) return;
    // With a live socket, only a topic it really held counts: a second unsubscribe must never take
    // another subscriber's share of the route. A held socket is out of the topic but still counted.
    if (socket !== null && !route.held?.delete(socket) && !socket.unsubscribe(route.topic)) return;
    route.count--;
    if (route.count > 0) return;
    routes.delete(identifier);
    if (routes.size > 0) return;
    this.streams.delete(stream);
    this.events.onStreamRemoved(stream);
  }

  /**
   * Takes a subscriber out of the topic while it catches up on history (its live messages are
   * buffered elsewhere), keeping its place in the count so the stream stays followed.
   */
  hold(socket: TopicSocket, stream: string, identifier: string): void {
    const route = this.streams.get(stream)?.get(identifier);
    if (route && socket.unsubscribe(route.topic)) (route.held ??= new Set()).add(socket);
  }

  /** Puts a held subscriber back in the topic; `live` false only forgets it (its connection is gone). */
  release(socket: TopicSocket, stream: string, identifier: string, live: boolean): void {
    const route = this.streams.get(stream)?.get(identifier);
    if (!route?.held?.delete(socket)) return;
    if (route.held.size === 0) route.held = null;
    if (live) socket.subscribe(route.topic);
  }

  /** Every route with its subscriber count (diagnostics and tests). */
  *routes(): IterableIterator<{ readonly stream: string; readonly identifier: string; readonly subscribers: number }> {
    for (const [stream, routes] of this.streams) {
      for (const [identifier, route] of routes) yield { stream, identifier, subscribers: route.count };
    }
  }

  /**
   * Delivers to this node's subscribers. `messageJson` is valid JSON text (the broadcast parser made
   * it so: no parse here). `exclude` is the socket of `meta.exclude_socket`, if here.
   * With a broker, `position` goes on every frame as stream_id/epoch/offset.
   */
  broadcast(stream: string, messageJson: string, exclude: TopicSocket | null, position: StreamPosition | null = null): void {
    const routes = this.streams.get(stream);
    if (!routes) return;
    // Built once per broadcast, shared by every (stream, identifier) frame.
    const frameTail = messageJson + (position === null ? '}' : positionSuffix(stream, position));
    const messageBytes = Buffer.byteLength(frameTail);
    for (const route of routes.values()) this.publish(route, route.framePrefix + frameTail, route.framePrefixBytes + messageBytes, exclude);
  }

  /**
   * Delivers a presence event as `{"type":"presence","identifier":…,"message":…}` to every subscriber
   * of the stream on this node, the joiner too. `eventJson` is valid JSON text (our events, or the
   * broadcast parser's output). Rare next to broadcasts: the prefix is built per event.
   */
  broadcastPresence(stream: string, eventJson: string): void {
    const routes = this.streams.get(stream);
    if (!routes) return;
    for (const [identifier, route] of routes) {
      const frame = `${presenceFramePrefix(identifier)}${eventJson}}`;
      this.publish(route, frame, Buffer.byteLength(frame), null);
    }
  }

  /** One route's frame to its topic and its secondary subscribers, counted per receiver (`frameBytes` each). */
  private publish(route: Route, frame: string, frameBytes: number, exclude: TopicSocket | null): void {
    // Subscribers held for a history catch-up are out of the topic: the hold sends them their copy.
    let receivers = route.count - (route.held?.size ?? 0);
    // uWS WebSocket.publish skips the publishing socket itself: exactly what exclude_socket needs.
    if (exclude !== null && exclude.isSubscribed(route.topic)) {
      exclude.publish(route.topic, frame);
      receivers--;
    } else {
      this.publisher.publish(route.topic, frame);
    }
    if (this.secondary !== null && this.secondary.size > 0) this.secondary.publish(route.topic, frame, exclude);
    const counters = this.metrics.counters;
    counters.server_msg_total += receivers;
    counters.data_sent_total += receivers * frameBytes;
  }
}
