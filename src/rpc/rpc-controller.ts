import type { Logger } from '../logging/logger.js';
import { RateLimitedLog } from '../logging/rate-limited.js';
import type { Metrics } from '../metrics/metrics.js';
import { RpcError, errorMessage } from '../errors.js';
import type { CallContext, CommandResult, ConnectResult, Controller, DisconnectContext, Status } from '../node/controller.js';
import { CancelledError, Semaphore, type CallSlots } from './semaphore.js';
import {
  STATUS_FAILURE, STATUS_SUCCESS, readCommandResponse, readConnectionResponse, readDisconnectResponse,
  type CommandMessage, type ConnectionRequest, type DisconnectRequest, type Env, type RpcStatus,
} from './messages.js';
import { presenceAction } from '../presence/rpc-presence.js';
import { GRPC_DEADLINE_EXCEEDED, GRPC_RESOURCE_EXHAUSTED, GRPC_UNAVAILABLE, type RpcMethod, type RpcTransport } from './transport.js';

export interface RpcControllerOptions {
  readonly concurrency: number;
  /** Budget of one call including retries. */
  readonly commandTimeoutMs: number;
  /** Deadline of one attempt (0 = the remaining budget). */
  readonly requestTimeoutMs: number;
  /** Slots shared with the node's other worker threads (the cap is per node); default: `concurrency` of its own. */
  readonly slots?: CallSlots;
}

/** anycable-go's backoff bases: resource exhaustion clears fast, an unavailable app takes longer. */
const BACKOFF_BASE_MS: Record<number, number> = { [GRPC_RESOURCE_EXHAUSTED]: 10, [GRPC_UNAVAILABLE]: 100 };

function toStatus(status: RpcStatus): Status {
  return status === STATUS_SUCCESS ? 'success' : status === STATUS_FAILURE ? 'failure' : 'error';
}

/** Waits `ms`, or less when `signal` aborts: a closed connection must not hold its slot through a backoff. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const onAbort = (): void => { clearTimeout(timer); resolve(); };
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The app's side of the controller chain: Connect/Command/Disconnect over gRPC or HTTP. */
export class RpcController implements Controller {
  private readonly semaphore: CallSlots;
  private readonly log: Logger;
  private readonly quietLog: RateLimitedLog;

  constructor(
    private readonly transport: RpcTransport,
    private readonly opts: RpcControllerOptions,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.semaphore = opts.slots ?? new Semaphore(opts.concurrency);
    this.log = logger.child({ component: 'rpc' });
    this.quietLog = new RateLimitedLog(this.log);
    metrics.registerGauge('rpc_pending_num', () => this.semaphore.pending);
  }

  private env(ctx: CallContext, istate: Readonly<Record<string, string>>): Env {
    return { url: ctx.request.url, headers: ctx.request.headers, cstate: ctx.cstate, istate };
  }

  /** Waits for a slot, then tries until success, a non-retryable error or the budget is spent. */
  private async invoke(method: RpcMethod, request: object, ctx: CallContext): Promise<unknown> {
    const counters = this.metrics.counters;
    try {
      await this.semaphore.acquire(ctx.signal);
    } catch (err) {
      if (err instanceof CancelledError) counters.rpc_canceled_total++;
      throw err;
    }
    try {
      counters.rpc_call_total++;
      const deadline = Date.now() + this.opts.commandTimeoutMs;
      let attempt = 0;
      let lastCode = -1;
      for (;;) {
        const remaining = deadline - Date.now();
        const attemptTimeout = this.opts.requestTimeoutMs > 0 ? Math.min(this.opts.requestTimeoutMs, remaining) : remaining;
        try {
          return await this.transport.call(method, request, ctx.sid, Math.max(1, attemptTimeout));
        } catch (err) {
          const code = err instanceof RpcError ? err.grpcCode : -1;
          if (code === GRPC_DEADLINE_EXCEEDED) {
            counters.rpc_timeout_total++;
            throw err;
          }
          const base = BACKOFF_BASE_MS[code];
          if (base !== undefined) {
            attempt = code === lastCode ? attempt + 1 : 0;
            lastCode = code;
            const delay = base * 2 ** attempt;
            if (Date.now() + delay < deadline) {
              counters.rpc_retries_total++;
              await sleep(delay, ctx.signal);
              if (ctx.signal.aborted) {
                // The retry is never sent: the caller treats it like a call dropped while waiting.
                counters.rpc_canceled_total++;
                throw new CancelledError();
              }
              continue;
            }
          }
          counters.rpc_error_total++;
          this.quietLog.warn(`${method}:${code}`, { method, code, err: errorMessage(err) }, 'rpc call failed');
          throw err;
        }
      }
    } finally {
      this.semaphore.release();
    }
  }

  async authenticate(ctx: CallContext): Promise<ConnectResult> {
    const request: ConnectionRequest = { env: this.env(ctx, {}) };
    const res = readConnectionResponse(await this.invoke('Connect', request, ctx));
    return {
      status: toStatus(res.status),
      identifiers: res.identifiers,
      transmissions: res.transmissions,
      cstate: res.env.cstate,
      errorMsg: res.error_msg,
      reason: res.status === STATUS_FAILURE ? 'rejected by the app' : '',
      usedRpc: true,
    };
  }

  private async command(ctx: CallContext, command: string, identifier: string, data: string, istate: Readonly<Record<string, string>>): Promise<CommandResult> {
    const request: CommandMessage = { command, identifier, connection_identifiers: ctx.identifiers, data, env: this.env(ctx, istate) };
    const res = readCommandResponse(await this.invoke('Command', request, ctx));
    return {
      status: toStatus(res.status),
      transmissions: res.transmissions,
      streams: res.streams,
      stopStreams: res.stop_streams,
      stoppedStreams: res.stopped_streams,
      disconnect: res.disconnect,
      cstate: res.env.cstate,
      istate: res.env.istate,
      errorMsg: res.error_msg,
      usedRpc: true,
      ...presenceAction(res.presence),
    };
  }

  subscribe(ctx: CallContext, identifier: string, istate: Readonly<Record<string, string>>): Promise<CommandResult> {
    return this.command(ctx, 'subscribe', identifier, '', istate);
  }

  unsubscribe(ctx: CallContext, identifier: string, istate: Readonly<Record<string, string>>): Promise<CommandResult> {
    return this.command(ctx, 'unsubscribe', identifier, '', istate);
  }

  perform(ctx: CallContext, identifier: string, data: string, istate: Readonly<Record<string, string>>): Promise<CommandResult> {
    return this.command(ctx, 'message', identifier, data, istate);
  }

  async disconnect(ctx: DisconnectContext): Promise<void> {
    const request: DisconnectRequest = {
      identifiers: ctx.identifiers,
      subscriptions: [...ctx.subscriptions],
      env: this.env(ctx, ctx.istates),
    };
    const res = readDisconnectResponse(await this.invoke('Disconnect', request, ctx));
    if (res.status !== STATUS_SUCCESS) this.log.warn({ sid: ctx.sid, err: res.error_msg }, 'disconnect rejected by the app');
  }

  async shutdown(): Promise<void> {
    this.transport.close();
  }
}
