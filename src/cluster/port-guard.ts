import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { Uws } from '../server/uws.js';
import { closeApp, createApp, listen } from '../server/http-server.js';

/**
 * Worker threads share the port with SO_REUSEPORT, which would also let a second server (any process
 * of this user) bind it and take a share of the traffic. Two checks keep the port the node's alone:
 * before the workers listen, an exclusive listen that fails if anyone holds the port; after, a look
 * at the kernel's listening sockets on it, which must all be ours (it catches a server that slipped
 * in between). The workers' own sockets are this process's, so they never trip it.
 */
export async function probeExclusive(uws: Uws, host: string, port: number): Promise<number> {
  const app = createApp(uws, { sslCert: '', sslKey: '' });
  try {
    const bound = await listen(uws, app, host, port);
    uws.us_listen_socket_close(bound.socket);
    return bound.port;
  } finally {
    closeApp(app);
  }
}

interface ListeningSocket {
  /** Local address as the kernel prints it (hex), port excluded. */
  readonly address: string;
  readonly ipv6: boolean;
  readonly inode: string;
}

/** Listening TCP sockets on `port` (Linux /proc; empty where there is none). */
function listenersOn(port: number): ListeningSocket[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const found: ListeningSocket[] = [];
  for (const [table, ipv6] of [['/proc/net/tcp', false], ['/proc/net/tcp6', true]] as const) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      // State 0A is LISTEN.
      if (local === undefined || fields[3] !== '0A' || fields[9] === undefined) continue;
      const [address, portHex] = local.split(':');
      if (portHex === hexPort && address !== undefined) found.push({ address, ipv6, inode: fields[9] });
    }
  }
  return found;
}

/** Socket inodes this process holds (every thread's). */
function ownSocketInodes(): Set<string> {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (match?.[1]) inodes.add(match[1]);
    } catch {
      // The fd closed meanwhile.
    }
  }
  return inodes;
}

/** An all-zero address: 0.0.0.0, or :: (which, dual-stack, also takes IPv4). */
function isWildcard(address: string): boolean {
  return /^0+$/.test(address);
}

/**
 * How many sockets of other processes listen on the port where they take connections meant for ours:
 * on our address, or anywhere our wildcard address covers (the kernel prefers the more specific one).
 */
export function foreignListeners(port: number): number {
  const listeners = listenersOn(port);
  if (listeners.length === 0) return 0;
  const own = ownSocketInodes();
  const ours = listeners.filter((l) => own.has(l.inode));
  const covered = (l: ListeningSocket): boolean =>
    ours.some((o) => o.address === l.address || (isWildcard(o.address) && (o.ipv6 || !l.ipv6)));
  return listeners.filter((l) => !own.has(l.inode) && covered(l)).length;
}
