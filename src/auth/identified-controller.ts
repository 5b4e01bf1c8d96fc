import { disconnectFrame, welcomeFrame } from '../protocol/messages.js';
import type { Awaitable, CallContext, CommandResult, ConnectResult, Controller, DisconnectContext } from '../node/controller.js';
import type { JwtVerifier } from './jwt.js';

/** One way to identify a connection without the app, synchronously (no I/O). `null` passes the connection on. */
export interface Identifier {
  identify(ctx: CallContext): ConnectResult | null;
}

function accepted(ctx: CallContext, identifiers: string): ConnectResult {
  return { status: 'success', identifiers, transmissions: [welcomeFrame(ctx.sid)], usedRpc: false };
}

function refused(reason: 'unauthorized' | 'token_expired', detail: string): ConnectResult {
  return { status: 'failure', identifiers: '', transmissions: [disconnectFrame(reason, false)], reason: detail, usedRpc: false };
}

export class JwtIdentifier implements Identifier {
  constructor(private readonly verifier: JwtVerifier, private readonly enforce: boolean) {}

  identify(ctx: CallContext): ConnectResult | null {
    const token = ctx.request.token;
    if (!token) return this.enforce ? refused('unauthorized', 'token missing') : null;
    const verdict = this.verifier.verify(token);
    return verdict.ok ? accepted(ctx, verdict.identifiers) : refused(verdict.reason, verdict.detail);
  }
}

/** Connections let in by the WebSocket key are machines: identified as {"user_id":<id>}. */
export class WsKeyIdentifier implements Identifier {
  identify(ctx: CallContext): ConnectResult | null {
    const id = ctx.request.keyUserId;
    return id === null ? null : accepted(ctx, JSON.stringify({ user_id: id }));
  }
}

/** --noauth / --public: everyone is accepted as {"sid":<sid>}. */
export class PublicIdentifier implements Identifier {
  identify(ctx: CallContext): ConnectResult | null {
    return accepted(ctx, JSON.stringify({ sid: ctx.sid }));
  }
}

/**
 * Runs the identifiers in order; the first answer wins, otherwise the inner controller (RPC) decides.
 * An identifier's answer is returned as is, not wrapped in a promise: the node applies it in the same
 * uWS callback (no microtask hop and no promise per connect).
 */
export class IdentifiedController implements Controller {
  constructor(private readonly identifiers: readonly Identifier[], private readonly inner: Controller) {}

  authenticate(ctx: CallContext): Awaitable<ConnectResult> {
    for (let i = 0; i < this.identifiers.length; i++) {
      const result = this.identifiers[i]!.identify(ctx);
      if (result) return result;
    }
    return this.inner.authenticate(ctx);
  }
  subscribe(ctx: CallContext, identifier: string, istate: Readonly<Record<string, string>>): Awaitable<CommandResult> {
    return this.inner.subscribe(ctx, identifier, istate);
  }
  unsubscribe(ctx: CallContext, identifier: string, istate: Readonly<Record<string, string>>): Awaitable<CommandResult> {
    return this.inner.unsubscribe(ctx, identifier, istate);
  }
  perform(ctx: CallContext, identifier: string, data: string, istate: Readonly<Record<string, string>>): Awaitable<CommandResult> {
    return this.inner.perform(ctx, identifier, data, istate);
  }
  disconnect(ctx: DisconnectContext): Promise<void> {
    return this.inner.disconnect(ctx);
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}
