import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { TOKEN_SUBPROTOCOL_PREFIX, SUPPORTED_PROTOCOLS, PROTOCOL_EXT_JSON, PROTOCOL_JSON, type SupportedProtocol } from '../protocol/messages.js';
import type { RequestInfo } from '../node/controller.js';
import { parsePingPrecision } from '../protocol/ext-frames.js';

export interface UpgradeOptions {
  readonly proxiedHeaders: readonly string[];
  /**
   * Whether an RPC controller will ever read the request (false under --norpc): only then are the headers
   * and the URL copied, since they live as long as the connection (a 2 KB cookie is ~2.6 KB of heap each).
   */
  readonly captureHeaders: boolean;
  readonly jwtParam: string;
  readonly secure: boolean;
  /** Only a verifier makes a token a credential: without one no token is captured (it would open the key gate). */
  readonly jwtEnabled: boolean;
}

/** Everything the upgrade needs; only `info` outlives it, kept small because it lives per connection. */
export interface CapturedUpgrade {
  readonly info: Omit<RequestInfo, 'keyUserId' | 'protocol'>;
  /** The query string without '?' (read with `queryParam`). */
  readonly rawQuery: string;
  /** The selected sub-protocol ('' when the client offered none of ours). */
  readonly protocol: SupportedProtocol | '';
  readonly secWebSocketKey: string;
  readonly secWebSocketExtensions: string;
  readonly pingOverride: number | null;
}

/** Shared by every connection whose headers nobody reads. */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * Copies what we need out of the uWS request, which is only valid during the callback.
 * Runs once per connect, so it reads each header once and parses only the query parameters it needs
 * (no URLSearchParams: that parsed the whole query and allocated a map per upgrade).
 */
export function captureUpgrade(res: HttpResponse, req: HttpRequest, opts: UpgradeOptions): CapturedUpgrade {
  const rawQuery = req.getQuery() ?? '';
  const offered = req.getHeader('sec-websocket-protocol');

  let protocol: SupportedProtocol | '' = '';
  let protocolToken = '';
  if (offered === PROTOCOL_JSON) {
    protocol = PROTOCOL_JSON; // what every Action Cable client offers: no list to split
  } else if (offered !== '') {
    for (const raw of offered.split(',')) {
      const entry = raw.trim();
      if (entry.startsWith(TOKEN_SUBPROTOCOL_PREFIX)) protocolToken ||= entry.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
      else if (protocol === '' && (SUPPORTED_PROTOCOLS as readonly string[]).includes(entry)) protocol = entry as SupportedProtocol;
    }
  }

  // Only when an RPC controller will read them (env.url, env.headers): they live as long as the connection.
  let url = '';
  let headers: Record<string, string> | null = null;
  if (opts.captureHeaders) {
    url = `${opts.secure ? 'https' : 'http'}://${req.getHeader('host') || 'localhost'}${req.getUrl()}${rawQuery ? `?${rawQuery}` : ''}`;
    headers = {};
    for (const name of opts.proxiedHeaders) {
      const value = req.getHeader(name);
      if (value !== '') headers[name] = value;
    }
    headers.REMOTE_ADDR = remoteAddress(res);
  }

  let token = '';
  if (opts.jwtEnabled) {
    // Header first, then the sub-protocol entry, then the query param (anycable-go's order).
    const tokenHeader = jwtHeaderName(opts.jwtParam);
    token = req.getHeader(tokenHeader) || protocolToken;
    // From the query, a slice of the kept URL (or of the query string) rather than a copy of its own.
    if (token === '') token = url === '' ? queryParam(rawQuery, opts.jwtParam) ?? '' : shareWith(url, queryParam(rawQuery, opts.jwtParam) ?? '');
    else if (headers !== null) headers[tokenHeader] = token;
  }

  const pi = queryParam(rawQuery, 'pi');
  const pingOverride = pi !== null && /^\d+$/.test(pi) ? Number.parseInt(pi, 10) : null;

  return {
    info: {
      url,
      headers: headers ?? NO_HEADERS,
      token,
      // Only ext-json sessions are restored; the header wins over the query (anycable-go's order).
      restoreSid: protocol === PROTOCOL_EXT_JSON ? req.getHeader('x-anycable-restore-sid') || queryParam(rawQuery, 'sid') || '' : '',
      pingPrecision: parsePingPrecision(queryParam(rawQuery, 'ptp')),
    },
    rawQuery,
    protocol,
    secWebSocketKey: req.getHeader('sec-websocket-key'),
    secWebSocketExtensions: req.getHeader('sec-websocket-extensions'),
    pingOverride,
  };
}

/**
 * The first value of `name` in a raw query string, exactly as URLSearchParams#get reads it, or null.
 * Without escapes ('%', '+') decoding is the identity, so a scan finds it without parsing the whole query.
 */
export function queryParam(rawQuery: string, name: string): string | null {
  if (rawQuery.includes('%') || rawQuery.includes('+')) return new URLSearchParams(rawQuery).get(name);
  let start = 0;
  while (start <= rawQuery.length) {
    let end = rawQuery.indexOf('&', start);
    if (end === -1) end = rawQuery.length;
    const eq = rawQuery.indexOf('=', start);
    const nameEnd = eq === -1 || eq > end ? end : eq;
    if (nameEnd - start === name.length && rawQuery.startsWith(name, start)) return nameEnd === end ? '' : rawQuery.slice(nameEnd + 1, end);
    start = end + 1;
  }
  return null;
}

/** The peer's IP address as text (uWS hands it over as ASCII bytes); read only where it is used. */
export function remoteAddress(res: HttpResponse): string {
  return String.fromCharCode.apply(null, new Uint8Array(res.getRemoteAddressAsText()) as unknown as number[]);
}

let jwtHeader = { param: '', name: '' };
/** `x-<jwt param>` in lower case, built once for the configured parameter (not per upgrade). */
function jwtHeaderName(param: string): string {
  if (jwtHeader.param !== param) jwtHeader = { param, name: `x-${param.toLowerCase()}` };
  return jwtHeader.name;
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
