import type { PresenceAction } from '../node/controller.js';
import type { PresenceResponse } from '../rpc/messages.js';
import { messageJsonFromData } from '../protocol/messages.js';

/**
 * CommandResponse.presence as an action: join needs an id; its info is JSON text, or a plain
 * string that is sent as a JSON string (as anycable-go parses it "if possible"). Anything else is
 * no action.
 */
export function presenceAction(presence: PresenceResponse | null): { presence?: PresenceAction } {
  if (!presence) return {};
  if (presence.type === 'join' && presence.id !== '') {
    return { presence: { type: 'join', id: presence.id, info: presence.info === '' ? '' : messageJsonFromData(presence.info) } };
  }
  if (presence.type === 'leave') return { presence: { type: 'leave' } };
  return {};
}
