import { confirmFrame, rejectFrame } from '../protocol/messages.js';
import { commandResult, type Awaitable, type CallContext, type CommandResult, type ConnectResult, type Controller, type DisconnectContext } from '../node/controller.js';
import { verifyStreamName } from './verifier.js';
import type { Logger } from '../logging/logger.js';

export const PUBSUB_CHANNEL = '$pubsub';
export const TURBO_CHANNEL = 'Turbo::StreamsChannel';
/** Channel state key naming the stream whispers go to. */
export const WHISPER_STATE_KEY = '$w';
/** Channel state key naming the stream whose presence join/leave/presence commands use. */
export const PRESENCE_STATE_KEY = '$p';

export interface StreamsOptions {
  readonly publicStreams: boolean;
  readonly streamsSecret: string;
  readonly streamsWhisper: boolean;
  readonly streamsPresence: boolean;
  readonly turboStreams: boolean;
  readonly turboStreamsSecret: string;
}

type StreamRoute =
  /** The answer to a subscribe, built once per identifier and shared (results are never mutated). */
  | { readonly kind: 'confirm'; readonly result: CommandResult }
  /** `why` is logged at info: a rejected subscription is the first thing a new user meets. */
  | { readonly kind: 'reject'; readonly why: string }
  | { readonly kind: 'pass' };

const PASS: StreamRoute = { kind: 'pass' };
const RESOLVED_CACHE_SIZE = 1024;

function confirmation(identifier: string, stream: string, whisper: boolean, presence: boolean): CommandResult {
  const state: Record<string, string> = {};
  if (whisper) state[WHISPER_STATE_KEY] = stream;
  if (presence) state[PRESENCE_STATE_KEY] = stream;
  return Object.freeze(commandResult('success', {
    transmissions: Object.freeze([confirmFrame(identifier)]),
    streams: Object.freeze([stream]),
    ...(Object.keys(state).length > 0 ? { istate: Object.freeze(state) } : {}),
  }));
}

function verified(identifier: string, stream: string | null, whisper: boolean, presence: boolean, why: string): StreamRoute {
  return stream === null ? { kind: 'reject', why } : { kind: 'confirm', result: confirmation(identifier, stream, whisper, presence) };
}

/**
 * Serves `$pubsub` (public and signed) and Turbo Streams subscriptions in the server, with no RPC;
 * every other channel goes to the inner controller.
 */
export class StreamsController implements Controller {
  private readonly log: Logger | null;
  /**
   * Stream identifiers already resolved. Thousands of clients subscribe with the same identifier, and
   * resolving one costs a JSON parse and, for signed names, an HMAC. Bounded: identifiers are client input.
   */
  private readonly resolved = new Map<string, StreamRoute>();

  constructor(private readonly opts: StreamsOptions, private readonly inner: Controller, logger?: Logger) {
    this.log = logger?.child({ component: 'streams' }) ?? null;
  }

  private route(identifier: string): StreamRoute {
    // Cheap substring test first: most identifiers are app channels and need no parse here.
    if (!identifier.includes(PUBSUB_CHANNEL) && !(this.opts.turboStreams && identifier.includes(TURBO_CHANNEL))) return PASS;
    let route = this.resolved.get(identifier);
    if (route === undefined) {
      route = this.resolve(identifier);
      if (this.resolved.size >= RESOLVED_CACHE_SIZE) this.resolved.clear();
      this.resolved.set(identifier, route);
    }
    return route;
  }

  private resolve(identifier: string): StreamRoute {
    let parsed: unknown;
    try {
      parsed = JSON.parse(identifier);
    } catch {
      return PASS;
    }
    if (typeof parsed !== 'object' || parsed === null) return PASS;
    const { channel, stream_name: streamName, signed_stream_name: signedName } = parsed as Record<string, unknown>;
    if (channel === PUBSUB_CHANNEL) {
      if (typeof streamName === 'string') {
        return verified(identifier, this.opts.publicStreams ? streamName : null, true, this.opts.streamsPresence,
          'public streams are off: subscribe with a signed_stream_name, or start with --public_streams');
      }
      if (typeof signedName === 'string') {
        return verified(identifier, verifyStreamName(this.opts.streamsSecret, signedName), this.opts.streamsWhisper, this.opts.streamsPresence,
          'invalid signed_stream_name: not signed with this server\'s --streams_secret (or --secret)');
      }
      return { kind: 'reject', why: 'neither stream_name nor signed_stream_name is a string' };
    }
    if (channel === TURBO_CHANNEL && this.opts.turboStreams) {
      const stream = typeof signedName === 'string' ? verifyStreamName(this.opts.turboStreamsSecret, signedName) : null;
      return verified(identifier, stream, false, false, 'invalid Turbo signed_stream_name: not signed with --turbo_streams_secret (or the streams secret)');
    }
    return PASS;
  }

  authenticate(ctx: CallContext): Awaitable<ConnectResult> {
    return this.inner.authenticate(ctx);
  }

  /** Stream channels are answered synchronously (no promise); the rest goes to the inner controller. */
  subscribe(ctx: CallContext, identifier: string, istate: Readonly<Record<string, string>>): Awaitable<CommandResult> {
    const route = this.route(identifier);
    if (route.kind === 'confirm') return route.result;
    if (route.kind === 'reject') {
      this.log?.info({ sid: ctx.sid, identifier, reason: route.why }, 'subscription rejected');
      return commandResult('failure', { transmissions: [rejectFrame(identifier)] });
    }
    return this.inner.subscribe(ctx, identifier, istate);
  }

  unsubscribe(ctx: CallContext, identifier: string, istate: Readonly<Record<string, string>>): Awaitable<CommandResult> {
    if (this.route(identifier).kind === 'pass') return this.inner.unsubscribe(ctx, identifier, istate);
    return commandResult('success', { stopStreams: true });
  }

  perform(ctx: CallContext, identifier: string, data: string, istate: Readonly<Record<string, string>>): Awaitable<CommandResult> {
    if (this.route(identifier).kind === 'pass') return this.inner.perform(ctx, identifier, data, istate);
    return commandResult('failure', { errorMsg: 'stream channels take no actions' });
  }

  disconnect(ctx: DisconnectContext): Promise<void> {
    return this.inner.disconnect(ctx);
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}
