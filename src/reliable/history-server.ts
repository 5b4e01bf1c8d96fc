import type { Broker, HistoryRead } from '../broker/broker.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { confirmHistoryFrame, positionedMessageFrame, rejectHistoryFrame } from '../protocol/ext-frames.js';
import type { CatchUp, CatchUpClient, Hold } from './catch-up.js';
import type { HistoryRequest } from './history-request.js';

export interface HistoryClient extends CatchUpClient {
  /** Streams of a confirmed subscription, or undefined when there is none. */
  subscription(identifier: string): { readonly streams: ReadonlySet<string> } | undefined;
  /** Writes batched into one syscall. */
  cork(writes: () => void): void;
}

export interface HistoryServerOptions {
  /**
   * How long live messages stay held after history was sent. A shared broker stores a broadcast
   * before pub/sub delivers it, so a message may be in the history read and arrive live just after:
   * held, it is recognised by its offset and not sent twice. The memory broker stores and delivers
   * in one step and needs no grace.
   */
  readonly graceMs: number;
}

/**
 * Answers history requests (the `history` command and `history` in subscribe): for each stream of
 * the subscription, what came after the client's position (or since its timestamp), oldest first,
 * then confirm_history; reject_history when any stream can't be served.
 */
export class HistoryServer {
  private readonly log: Logger;

  constructor(
    private readonly broker: Broker | null,
    private readonly catchUp: CatchUp,
    private readonly opts: HistoryServerOptions,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'history' });
  }

  async serve(client: HistoryClient, identifier: string, request: HistoryRequest | null): Promise<void> {
    const sub = client.subscription(identifier);
    const broker = this.broker;
    if (broker === null || sub === undefined || request === null) {
      this.reject(client, identifier, this.broker === null ? 'no broker' : sub === undefined ? 'unknown subscription' : 'malformed request');
      return;
    }
    const streams = [...sub.streams];
    const holds: Array<Hold | null> = streams.map((stream) => this.catchUp.hold(client, identifier, stream));
    for (const hold of holds) if (hold) this.catchUp.adopt(hold);
    let reads: HistoryRead[];
    try {
      reads = await Promise.all(streams.map((stream) => this.read(stream, request)));
    } catch (err) {
      this.log.warn({ err: String(err) }, 'history read failed');
      reads = [{ ok: false, miss: 'unavailable' }];
    }
    const failed = reads.find((r) => !r.ok);
    if (failed && !failed.ok) {
      client.cork(() => {
        for (const hold of holds) if (hold) this.catchUp.release(hold);
        this.reject(client, identifier, failed.miss);
      });
      return;
    }
    client.cork(() => {
      this.metrics.counters.history_hits_total++;
      streams.forEach((stream, i) => {
        const hold = holds[i] ?? null;
        const known = request.streams.get(stream);
        if (known && hold) hold.raise(known);
        this.sendEntries(client, identifier, stream, reads[i], hold);
      });
      client.send(confirmHistoryFrame(identifier));
      if (this.opts.graceMs <= 0) {
        for (const hold of holds) if (hold) this.catchUp.release(hold);
      }
    });
    if (this.opts.graceMs <= 0) return;
    // In the background: the client's next commands need not wait for it (its live messages stay held).
    void this.tail(client, identifier, streams, holds, request, broker).catch((err: unknown) => {
      this.log.warn({ err: String(err) }, 'history tail read failed');
      for (const hold of holds) if (hold) this.catchUp.release(hold);
    });
  }

  /**
   * After the grace, a second read closes the gap of a stream this node only just subscribed to in
   * pub/sub: what was stored after the first read but published before the subscription took effect
   * comes from here. Then the holds end.
   */
  private async tail(client: HistoryClient, identifier: string, streams: readonly string[], holds: ReadonlyArray<Hold | null>, request: HistoryRequest, broker: Broker): Promise<void> {
    await new Promise((r) => setTimeout(r, this.opts.graceMs).unref());
    const tails = await Promise.all(streams.map((stream, i) => {
      const from = holds[i]?.watermark ?? null;
      return (from ? broker.history.readFrom(stream, from) : this.read(stream, request)).catch(() => null);
    }));
    client.cork(() => {
      streams.forEach((stream, i) => {
        const hold = holds[i] ?? null;
        this.sendEntries(client, identifier, stream, tails[i] ?? null, hold);
        if (hold) this.catchUp.release(hold);
      });
    });
  }

  /** Sends the entries the client does not have yet, raising the hold's mark as it goes. */
  private sendEntries(client: HistoryClient, identifier: string, stream: string, read: HistoryRead | null | undefined, hold: Hold | null): void {
    if (!read?.ok) return;
    for (const entry of read.entries) {
      if (hold?.historyHas(entry)) continue;
      client.send(positionedMessageFrame(identifier, stream, entry.data, entry));
      hold?.raise(entry);
    }
  }

  private read(stream: string, request: HistoryRequest): Promise<HistoryRead> {
    const position = request.streams.get(stream);
    if (position) return this.broker!.history.readFrom(stream, position);
    if (request.since !== null) return this.broker!.history.readSince(stream, request.since);
    return Promise.resolve({ ok: true, entries: [] });
  }

  private reject(client: HistoryClient, identifier: string, why: string): void {
    this.metrics.counters.history_misses_total++;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ sid: client.sid, why }, 'history rejected');
    client.send(rejectHistoryFrame(identifier));
  }
}
