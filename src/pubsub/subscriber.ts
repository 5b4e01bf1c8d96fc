import type { Publication } from '../broadcast/message.js';

/**
 * Moves publications between nodes. A node subscribes per stream, so it receives only the
 * streams its clients follow; remote commands go to every node.
 */
export interface Subscriber {
  start(deliver: (pub: Publication) => void): Promise<void>;
  /**
   * Sends a publication to every node that follows its stream (including this one). False when it
   * was refused at once (broker down and the hold full: counted and logged by the subscriber).
   */
  publish(pub: Publication): boolean;
  subscribeStream(stream: string): void;
  unsubscribeStream(stream: string): void;
  shutdown(): Promise<void>;
}
