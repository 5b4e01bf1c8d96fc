import type { Config } from '../config/config.js';
import { mintToken } from '../auth/jwt.js';
import { signStreamName } from '../streams/verifier.js';

export const DEMO_STREAM = 'demo';
export const DEMO_USER = { user_id: 'test' };

export interface QuickStartValues {
  readonly token: string;
  readonly broadcastKey: string;
  readonly signedStream: string;
  readonly wsUrl: string;
  /** A page of the server itself: its console may open WebSockets to localhost (a blank tab's may not). */
  readonly pageUrl: string;
  readonly broadcastUrl: string;
}

/** A host clients can dial: a wildcard bind address is reached through localhost. */
function dialHost(host: string): string {
  return host === '0.0.0.0' || host === '::' || host === '' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
}

export async function quickStartValues(config: Config, ports: { readonly main: number; readonly api: number }): Promise<QuickStartValues> {
  const host = dialHost(config.host);
  const scheme = config.sslCert ? 'wss' : 'ws';
  return {
    token: await mintToken(config.jwtSecrets[0] ?? '', JSON.stringify(DEMO_USER), 24 * 3600),
    broadcastKey: config.broadcastKey,
    signedStream: signStreamName(config.streamsSecret, DEMO_STREAM),
    wsUrl: `${scheme}://${host}:${ports.main}${config.paths[0] ?? '/cable'}`,
    pageUrl: `${config.sslCert ? 'https' : 'http'}://${host}:${ports.main}${config.healthPath}`,
    // The API port answers every HTTP/1.x form; without it (shared port) the main port serves broadcasts.
    broadcastUrl: `${ports.api ? 'http' : config.sslCert ? 'https' : 'http'}://${host}:${ports.api || ports.main}${config.httpBroadcastPath}`,
  };
}

/** The browser-console line: subscribes to the signed demo stream and logs every frame. */
export function browserSnippet(v: QuickStartValues, jwtParam: string): string {
  return `const ws = new WebSocket('${v.wsUrl}?${jwtParam}=${v.token}', 'actioncable-v1-json'); ` +
    'ws.onmessage = (e) => console.log(e.data); ' +
    `ws.onopen = () => ws.send(JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', signed_stream_name: '${v.signedStream}' }) }));`;
}

export function curlLine(v: QuickStartValues): string {
  const auth = v.broadcastKey ? ` -H 'Authorization: Bearer ${v.broadcastKey}'` : '';
  return `curl -X POST ${v.broadcastUrl}${auth} -H 'Content-Type: application/json' ` +
    `-d '{"stream":"${DEMO_STREAM}","data":"{\\"text\\":\\"Hello from cablecat\\"}"}'`;
}

/** Everything a new user needs to see one message end to end (printed in development with a generated secret). */
export function quickStartText(v: QuickStartValues, jwtParam: string): string {
  return [
    '',
    '=== cablecat quick start (development: the secret is random, valid for this run only) ===',
    `Client token (identifiers ${JSON.stringify(DEMO_USER)}, valid 24 h): ${v.token}`,
    `Broadcast key: ${v.broadcastKey}`,
    `Signed name of the stream "${DEMO_STREAM}": ${v.signedStream}`,
    '',
    `1. Subscribe: open ${v.pageUrl} in a browser and paste into its console (not a blank tab: Chrome blocks it):`,
    `   ${browserSnippet(v, jwtParam)}`,
    '2. Broadcast from a shell:',
    `   ${curlLine(v)}`,
    '   The console then shows {"identifier":…,"message":{"text":"Hello from cablecat"}}.',
    '',
  ].join('\n');
}
