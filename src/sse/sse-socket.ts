import type { HttpResponse } from 'uWebSockets.js';
import type { TopicPublisher } from '../hub/hub.js';
import type { SessionSocket } from '../node/session.js';
import { encodeEvent } from './sse-encoder.js';
import type { SseSubscriber, SseTopics } from './sse-topics.js';

/** What the endpoint hears from its connection. */
export interface SseSocketListener {
  /** A frame was written before the response head (the endpoint watches for the subscription answers). */
  pendingFrame(frame: string): void;
  /** The session closed the connection before the response head: the endpoint answers with a status. */
  pendingEnd(code: number): void;
  /** The client went away (the request was aborted). */
  aborted(): void;
  /** A stream that was established is over (either side ended it). */
  streamClosed(): void;
}

type State = 'pending' | 'streaming' | 'closed';

/** A comment line: written when uWS asks for more and nothing waits, so its own buffer gets flushed. */
const FLUSH_COMMENT = ':\n';

/**
 * One SSE response as a session's socket. Until the endpoint decides the status (authenticated and
 * subscribed: 200; otherwise an error), events are kept in memory; then the response streams as
 * chunked HTTP/1.1. When uWS can't take a write, later events wait here until it asks for more;
 * their size is the connection's buffered amount for the slow-client rule. The hub reaches it through
 * the SSE topic index, as uWS reaches websockets through native topics.
 */
export class SseSocket implements SessionSocket, SseSubscriber {
  private state: State = 'pending';
  private pending: string[] = [];
  /** Events waiting for uWS to drain; null while writes go straight through. */
  private queue: string[] | null = null;
  private queuedBytes = 0;
  /** Size of the write uWS could not take whole (its remainder sits in uWS's buffer). */
  private stuckBytes = 0;
  private readonly topics = new Set<string>();

  constructor(
    private readonly res: HttpResponse,
    private readonly index: SseTopics,
    /** uWS's app-wide publish: how an excluded SSE socket still reaches the websockets of a topic. */
    private readonly uws: TopicPublisher,
    readonly unwrap: boolean,
    private readonly listener: SseSocketListener,
  ) {
    res.onAborted(() => {
      if (this.state === 'closed') return;
      const wasStreaming = this.state === 'streaming';
      this.state = 'closed';
      this.dropTopics();
      if (wasStreaming) this.listener.streamClosed();
      this.listener.aborted();
    });
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  // ---- SessionSocket ----------------------------------------------------------------------

  send(frame: string): number {
    if (this.state === 'closed') return 0;
    this.writeEvent(encodeEvent(frame, this.unwrap));
    if (this.state === 'pending') this.listener.pendingFrame(frame);
    return 1;
  }

  end(code = 1000): void {
    if (this.state === 'closed') return;
    if (this.state === 'pending') {
      this.listener.pendingEnd(code);
      return;
    }
    this.state = 'closed';
    this.dropTopics();
    this.listener.streamClosed();
    // The terminating chunk: EventSource reconnects (unless told `retry:` a year). Not end(…, true): once
    // streaming, uWS 20.30 would write its `Connection: close` header into the body. The connection stays
    // for keep-alive and uWS's idle timeout closes it if the client does not go on.
    // What waited for uWS to drain goes first: the last event (a disconnect reason) must follow it.
    const rest = this.queue === null ? '' : this.queue.join('');
    this.queue = null;
    this.res.cork(() => this.res.end(rest));
  }

  getBufferedAmount(): number {
    return this.queue === null ? 0 : this.queuedBytes + this.stuckBytes;
  }

  cork(cb: () => void): void {
    if (this.state === 'closed') cb();
    else this.res.cork(cb);
  }

  subscribe(topic: string): boolean {
    if (this.state === 'closed' || !this.index.add(topic, this)) return false;
    this.topics.add(topic);
    return true;
  }

  unsubscribe(topic: string): boolean {
    this.topics.delete(topic);
    return this.index.remove(topic, this);
  }

  isSubscribed(topic: string): boolean {
    return this.topics.has(topic);
  }

  /** As uWS WebSocket.publish: everyone on the topic but this socket (exclude_socket); the hub adds SSE peers. */
  publish(topic: string, message: string): boolean {
    return this.uws.publish(topic, message);
  }

  // ---- response ---------------------------------------------------------------------------

  writeEvent(event: string): void {
    if (this.state === 'pending') this.pending.push(event);
    else if (this.state === 'streaming') this.write(event);
  }

  /** 200 and the stream: the head, then every event kept so far, in one write. */
  establish(headers: Readonly<Record<string, string>>): void {
    if (this.state !== 'pending') return;
    this.state = 'streaming';
    const first = this.pending.join('');
    this.pending = [];
    this.res.cork(() => {
      this.res.writeStatus('200 OK');
      for (const [name, value] of Object.entries(headers)) this.res.writeHeader(name, value);
      this.res.onWritable(() => this.drain());
      this.writeNow(first);
    });
  }

  /** An error answer instead of a stream; the connection closes. */
  refuse(status: string, body: string, headers: Readonly<Record<string, string>>): void {
    if (this.state !== 'pending') return;
    this.state = 'closed';
    this.pending = [];
    this.dropTopics();
    this.res.cork(() => {
      this.res.writeStatus(status);
      for (const [name, value] of Object.entries(headers)) this.res.writeHeader(name, value);
      this.res.end(body, true);
    });
  }

  private write(chunk: string): void {
    if (this.queue !== null) {
      this.queue.push(chunk);
      this.queuedBytes += Buffer.byteLength(chunk);
      return;
    }
    this.res.cork(() => this.writeNow(chunk));
  }

  private writeNow(chunk: string): void {
    if (chunk === '' || this.res.write(chunk)) return;
    this.queue = [];
    this.stuckBytes = Buffer.byteLength(chunk);
  }

  /** uWS can take more: everything that waited goes in one write. */
  private drain(): boolean {
    if (this.state !== 'streaming' || this.queue === null) return true;
    const chunk = this.queue.length > 0 ? this.queue.join('') : FLUSH_COMMENT;
    this.queue = null;
    this.queuedBytes = 0;
    this.stuckBytes = 0;
    this.writeNow(chunk);
    return this.queue === null;
  }

  private dropTopics(): void {
    for (const topic of this.topics) this.index.remove(topic, this);
    this.topics.clear();
  }
}
