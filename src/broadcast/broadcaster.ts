import type { Publication } from './message.js';

/** A way for the app's broadcasts to get in (HTTP is a route; Redis and NATS are these). */
export interface Broadcaster {
  start(): Promise<void>;
  shutdown(): Promise<void>;
}

/** Receives parsed publications from a fan-out source: every node hears the same message. */
export type FanoutHandler = (pubs: readonly Publication[]) => void;
