import { disconnectFrame, rejectFrame } from '../protocol/messages.js';
import { commandResult, type CallContext, type CommandResult, type ConnectResult, type Controller } from './controller.js';

/** Stands in for RPC under --norpc: whatever the auth and stream layers did not handle is refused. */
export class NullController implements Controller {
  async authenticate(_ctx: CallContext): Promise<ConnectResult> {
    return { status: 'failure', identifiers: '', transmissions: [disconnectFrame('unauthorized', false)], reason: 'no credentials and RPC is disabled', usedRpc: false };
  }
  async subscribe(_ctx: CallContext, identifier: string): Promise<CommandResult> {
    return commandResult('failure', { transmissions: [rejectFrame(identifier)] });
  }
  async unsubscribe(): Promise<CommandResult> {
    return commandResult('success');
  }
  async perform(): Promise<CommandResult> {
    return commandResult('failure', { errorMsg: 'RPC is disabled' });
  }
  async disconnect(): Promise<void> {}
  async shutdown(): Promise<void> {}
}
