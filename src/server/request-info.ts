import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { TOKEN_SUBPROTOCOL_PREFIX, SUPPORTED_PROTOCOLS, type SupportedProtocol } from '../protocol/messages.js';
import type { RequestInfo } from '../node/controller.js';
import { parsePingPrecision } from '../protocol/ext-frames.js';

export interface UpgradeOptions {
  readonly proxiedHeaders: readonly string[];
  readonly jwtParam: string;
  readonly secure: boolean;
  /** Only a verifier makes a token a credential: without one no token is captured (it would open the key gate). */
  readonly jwtEnabled: boolean;
}

/** Everything the upgrade needs; only `info` outlives it, kept small because it lives per connection. */
export interface CapturedUpgrade {
  readonly info: Omit<RequestInfo, 'keyUserId' | 'protocol'>;
  readonly query: URLSearchParams;
  readonly remoteAddress: string;
  /** The selected sub-protocol ('' when the client offered none of ours). */
  readonly protocol: SupportedProtocol | '';
  readonly secWebSocketKey: string;
  readonly secWebSocketExtensions: string;
  readonly origin: string;
  readonly pingOverride: number | null;
}

/** Copies what we need out of the uWS request, which is only valid during the callback. */
export function captureUpgrade(res: HttpResponse, req: HttpRequest, opts: UpgradeOptions): CapturedUpgrade {
  const path = req.getUrl();
  const rawQuery = req.getQuery() ?? '';
  const query = new URLSearchParams(rawQuery);
  const host = req.getHeader('host');
  const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString('utf8');
  const subprotocols = req.getHeader('sec-websocket-protocol').split(',').map((p) => p.trim()).filter((p) => p !== '');

  let protocol: SupportedProtocol | '' = '';
  let protocolToken = '';
  for (const entry of subprotocols) {
    if (entry.startsWith(TOKEN_SUBPROTOCOL_PREFIX)) protocolToken ||= entry.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
    else if (protocol === '' && (SUPPORTED_PROTOCOLS as readonly string[]).includes(entry)) protocol = entry as SupportedProtocol;
  }

  const tokenHeader = `x-${opts.jwtParam.toLowerCase()}`;
  // Header first, then the sub-protocol entry, then the query param (anycable-go's order).
  const url = `${opts.secure ? 'https' : 'http'}://${host || 'localhost'}${path}${rawQuery ? `?${rawQuery}` : ''}`;
  const token = opts.jwtEnabled ? req.getHeader(tokenHeader) || protocolToken || shareWith(url, query.get(opts.jwtParam) ?? '') : '';

  const headers: Record<string, string> = {};
  for (const name of opts.proxiedHeaders) {
    const value = req.getHeader(name);
    if (value !== '') headers[name] = value;
  }
  headers.REMOTE_ADDR = remoteAddress;
  if (token && (req.getHeader(tokenHeader) || protocolToken)) headers[tokenHeader] = token;

  const pi = query.get('pi');
  const pingOverride = pi !== null && /^\d+$/.test(pi) ? Number.parseInt(pi, 10) : null;

  return {
    info: {
      url,
      headers,
      token,
      // The header wins over the query (anycable-go's order).
      restoreSid: req.getHeader('x-anycable-restore-sid') || query.get('sid') || '',
      pingPrecision: parsePingPrecision(query.get('ptp')),
    },
    query,
    remoteAddress,
    protocol,
    secWebSocketKey: req.getHeader('sec-websocket-key'),
    secWebSocketExtensions: req.getHeader('sec-websocket-extensions'),
    origin: req.getHeader('origin'),
    pingOverride,
  };
}

/**
 * The same text as a slice of `whole` when it occurs there verbatim (a JWT in the query does):
 * V8 then shares the characters instead of keeping a second copy for the connection's lifetime.
 */
function shareWith(whole: string, part: string): string {
  const at = part.length > 0 ? whole.indexOf(part) : -1;
  return at === -1 ? part : whole.slice(at, at + part.length);
}

/** anycable-go's origin rule: host[:port] of the Origin, case-insensitive; a leading * is a suffix match. */
export function originAllowed(origin: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0 || origin === '') return true;
  let host: string;
  try {
    host = new URL(origin).host.toLowerCase();
  } catch {
    return false;
  }
  return allowed.some((pattern) => (pattern.startsWith('*') ? host.endsWith(pattern.slice(1)) : host === pattern));
}
