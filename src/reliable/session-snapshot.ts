/**
 * What a session leaves behind so a reconnecting client can resume it (anycable-go's session cache):
 * identifiers, connection state, and each subscription with its channel state and streams.
 */
export interface SessionSnapshot {
  readonly identifiers: string;
  readonly cstate: Readonly<Record<string, string>>;
  readonly subscriptions: ReadonlyArray<{
    readonly identifier: string;
    readonly istate: Readonly<Record<string, string>>;
    readonly streams: readonly string[];
  }>;
  /** The app took part (RPC), so Disconnect is due in auto mode. */
  readonly usedRpc: boolean;
}

const VERSION = 1;

export function encodeSnapshot(s: SessionSnapshot): string {
  return JSON.stringify({
    v: VERSION,
    ids: s.identifiers,
    cstate: s.cstate,
    subs: s.subscriptions.map((sub) => [sub.identifier, sub.istate, sub.streams]),
    rpc: s.usedRpc,
  });
}

function stringRecord(value: unknown): Record<string, string> | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') return null;
    out[k] = v;
  }
  return out;
}

/** Null for anything that is not a snapshot we wrote (another version, a corrupted entry). */
export function decodeSnapshot(text: string): SessionSnapshot | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { v, ids, cstate, subs, rpc } = value as Record<string, unknown>;
  const cs = stringRecord(cstate);
  if (v !== VERSION || typeof ids !== 'string' || cs === null || !Array.isArray(subs) || typeof rpc !== 'boolean') return null;
  const subscriptions: Array<SessionSnapshot['subscriptions'][number]> = [];
  for (const entry of subs as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 3) return null;
    const [identifier, istate, streams] = entry as [unknown, unknown, unknown];
    const is = stringRecord(istate);
    if (typeof identifier !== 'string' || is === null || !Array.isArray(streams) || !streams.every((s) => typeof s === 'string')) return null;
    subscriptions.push({ identifier, istate: is, streams: streams as string[] });
  }
  return { identifiers: ids, cstate: cs, subscriptions, usedRpc: rpc };
}
