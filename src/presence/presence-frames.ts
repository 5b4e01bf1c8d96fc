/** Presence frames and event payloads, in anycable-go's key order. Infos are JSON text ('' = none). */
import type { PresenceSnapshot } from './presence-store.js';

/** `"info":…` with the raw JSON, or nothing for a member without info (anycable-go omits it). */
function infoField(info: string): string {
  return info === '' ? '' : `,"info":${info}`;
}

/** The `message` of a join event: `{"type":"join","id":…,"info":…}`. */
export function joinEventJson(id: string, info: string): string {
  return `{"type":"join","id":${JSON.stringify(id)}${infoField(info)}}`;
}

/** The `message` of a leave event: `{"type":"leave","id":…}`. */
export function leaveEventJson(id: string): string {
  return `{"type":"leave","id":${JSON.stringify(id)}}`;
}

/** `{"type":"presence","identifier":…,"message":` — what a presence frame starts with; the message and `}` follow. */
export function presenceFramePrefix(identifier: string): string {
  return `{"type":"presence","identifier":${JSON.stringify(identifier)},"message":`;
}

/** The answer to a `presence` command: `{"type":"presence","identifier":…,"message":{"type":"info","total":n,"records":[…]}}`. */
export function presenceInfoFrame(identifier: string, snapshot: PresenceSnapshot): string {
  const records = snapshot.records.map((r) => `{"id":${JSON.stringify(r.id)}${infoField(r.info)}}`).join(',');
  return `${presenceFramePrefix(identifier)}{"type":"info","total":${snapshot.total},"records":[${records}]}}`;
}
