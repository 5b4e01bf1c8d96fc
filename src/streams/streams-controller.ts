import { confirmFrame, rejectFrame } from '../protocol/messages.js';
import { commandResult, type CallContext, type CommandResult, type ConnectResult, type Controller, type DisconnectContext } from '../node/controller.js';
import { verifyStreamName } from './verifier.js';

export const PUBSUB_CHANNEL = '$pubsub';
export const TURBO_CHANNEL = 'Turbo::StreamsChannel';
/** Channel state key naming the stream whispers go to. */
export const WHISPER_STATE_KEY = '$w';

export interface StreamsOptions {
  readonly publicStreams: boolean;
  readonly streamsSecret: string;
  readonly streamsWhisper: boolean;
  readonly turboStreams: boolean;
  readonly turboStreamsSecret: string;
}

type StreamRoute = { readonly kind: 'stream'; readonly stream: string | null; readonly whisper: boolean } | { readonly kind: 'pass' };

/**
 * Serves `$pubsub` (public and signed) and Turbo Streams subscriptions in the server, with no RPC;
 * every other channel goes to the inner controller.
 */
export class StreamsController implements Controller {
  constructor(private readonly opts: StreamsOptions, private readonly inner: Controller) {}

  private route(identifier: string): StreamRoute {
    // Cheap substring test first: most identifiers are app channels and need no parse here.
    if (!identifier.includes(PUBSUB_CHANNEL) && !(this.opts.turboStreams && identifier.includes(TURBO_CHANNEL))) return { kind: 'pass' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(identifier);
    } catch {
      return { kind: 'pass' };
    }
    if (typeof parsed !== 'object' || parsed === null) return { kind: 'pass' };
    const { channel, stream_name: streamName, signed_stream_name: signedName } = parsed as Record<string, unknown>;
    if (channel === PUBSUB_CHANNEL) {
      if (typeof streamName === 'string') return { kind: 'stream', stream: this.opts.publicStreams ? streamName : null, whisper: true };
      if (typeof signedName === 'string') return { kind: 'stream', stream: verifyStreamName(this.opts.streamsSecret, signedName), whisper: this.opts.streamsWhisper };
      return { kind: 'stream', stream: null, whisper: false };
    }
    if (channel === TURBO_CHANNEL && this.opts.turboStreams) {
      const stream = typeof signedName === 'string' ? verifyStreamName(this.opts.turboStreamsSecret, signedName) : null;
      return { kind: 'stream', stream, whisper: false };
    }
    return { kind: 'pass' };
  }

  authenticate(ctx: CallContext): Promise<ConnectResult> {
    return this.inner.authenticate(ctx);
  }

  async subscribe(ctx: CallContext, identifier: string, istate: Readonly<Record<string, string>>): Promise<CommandResult> {
    const route = this.route(identifier);
    if (route.kind === 'pass') return this.inner.subscribe(ctx, identifier, istate);
    if (route.stream === null) return commandResult('failure', { transmissions: [rejectFrame(identifier)] });
    return commandResult('success', {
      transmissions: [confirmFrame(identifier)],
      streams: [route.stream],
      ...(route.whisper ? { istate: { [WHISPER_STATE_KEY]: route.stream } } : {}),
    });
  }

  async unsubscribe(ctx: CallContext, identifier: string, istate: Readonly<Record<string, string>>): Promise<CommandResult> {
    if (this.route(identifier).kind === 'pass') return this.inner.unsubscribe(ctx, identifier, istate);
    return commandResult('success', { stopStreams: true });
  }

  async perform(ctx: CallContext, identifier: string, data: string, istate: Readonly<Record<string, string>>): Promise<CommandResult> {
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
