import { connect, type NatsConnection, type Subscription } from 'nats';
import type { Logger } from '../logging/logger.js';
import { RateLimitedLog } from '../logging/rate-limited.js';
import type { Metrics } from '../metrics/metrics.js';

/** Publications held while NATS has never been reached; past this they are refused (and counted). */
const MAX_HELD = 10_000;

/**
 * A NATS connection that never blocks start-up: it connects in the background and keeps trying,
 * subscriptions asked for before that are made once connected, and publications are held until then.
 * After the first connect nats.js itself reconnects, resubscribes and buffers; transitions are logged
 * and reported in metrics.
 */
export class NatsLink {
  private connection: NatsConnection | null = null;
  private readonly wanted = new Map<string, { readonly onMessage: (data: Uint8Array) => void; sub: Subscription | null }>();
  private readonly held: Array<[string, Uint8Array]> = [];
  private up = false;
  private closed = false;
  private readonly log: Logger;
  private resolveConnection: (connection: NatsConnection) => void = () => undefined;
  /** Resolves once the first connect succeeded (JetStream users wait on it). */
  readonly connection$ = new Promise<NatsConnection>((resolve) => { this.resolveConnection = resolve; });
  private readonly quiet: RateLimitedLog;

  constructor(private readonly servers: readonly string[], role: string, private readonly metrics: Metrics, logger: Logger) {
    this.log = logger.child({ role });
    this.quiet = new RateLimitedLog(this.log);
    metrics.registerGauge('broker_connected', () => (this.up ? 1 : 0));
  }

  start(): void {
    this.log.info({ servers: this.servers }, 'connecting to nats');
    void this.connectUntilUp();
  }

  /**
   * nats.js's waitOnFirstConnect retries silently (an unreachable NATS logged nothing for 15 s):
   * we make the first attempts ourselves, warn at the first failure as for Redis, then rate-limited.
   */
  private async connectUntilUp(): Promise<void> {
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        const connection = await connect({
          servers: [...this.servers], waitOnFirstConnect: false, timeout: 5000,
          reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 5000,
        });
        this.onConnected(connection);
        return;
      } catch (err) {
        const fields = { servers: this.servers, err: String(err), attempts: attempt };
        if (attempt === 1) this.log.warn(fields, 'nats unreachable, retrying in the background (publications are held meanwhile)');
        else this.quiet.warn('unreachable', fields, 'nats still unreachable');
      }
      await new Promise<void>((resolve) => setTimeout(resolve, Math.min(250 * attempt, 2000)).unref());
    }
  }

  private onConnected(connection: NatsConnection): void {
    if (this.closed) {
      void connection.close();
      return;
    }
    this.connection = connection;
    this.up = true;
    this.resolveConnection(connection);
    this.log.info('connected to nats');
    // Subscriptions first, then what was held: a node hears its own held publications too.
    for (const [subject, entry] of this.wanted) entry.sub = this.listen(subject, entry.onMessage);
    for (const [subject, data] of this.held.splice(0)) connection.publish(subject, data);
    void (async () => {
      for await (const status of connection.status()) {
        if (status.type === 'disconnect') {
          this.up = false;
          this.log.warn('nats connection lost, reconnecting');
        } else if (status.type === 'reconnect') {
          this.up = true;
          this.metrics.counters.broker_reconnects_total++;
          this.log.info('reconnected to nats');
        }
      }
    })();
  }

  private listen(subject: string, onMessage: (data: Uint8Array) => void): Subscription | null {
    return this.connection?.subscribe(subject, { callback: (err, msg) => { if (!err) onMessage(msg.data); } }) ?? null;
  }

  subscribe(subject: string, onMessage: (data: Uint8Array) => void): void {
    if (this.wanted.has(subject)) return;
    this.wanted.set(subject, { onMessage, sub: this.listen(subject, onMessage) });
  }

  unsubscribe(subject: string): void {
    this.wanted.get(subject)?.sub?.unsubscribe();
    this.wanted.delete(subject);
  }

  get isUp(): boolean {
    return this.up;
  }

  /** False when the publication could not be taken (the hold or nats.js's reconnect buffer is full). */
  publish(subject: string, data: Uint8Array): boolean {
    if (this.connection) {
      try {
        this.connection.publish(subject, data);
        return true;
      } catch (err) {
        // nats.js refuses once its reconnect buffer is full or the connection is closed.
        this.log.warn({ err: String(err) }, 'nats publish failed');
        return false;
      }
    }
    if (this.held.length >= MAX_HELD) return false;
    this.held.push([subject, data]);
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.connection?.close().catch(() => undefined);
  }
}

/** NATS subjects are dot-separated tokens without spaces or wildcards: stream names are encoded. */
export function streamSubject(prefix: string, stream: string): string {
  return `${prefix}.${Buffer.from(stream, 'utf8').toString('base64url') || '_'}`;
}
