// The limit: a bare uWebSockets.js server speaking the smallest Action Cable subset
// (welcome, subscribe confirm to a $pubsub stream, HTTP broadcast through uWS publish).
// The same native binary cablecat picks for this Node (see src/server/uws.ts).
import { loadUws } from '../../src/server/uws.js';

const uws = loadUws();
const port = Number(process.argv[2] ?? 9001);
const app = uws.App();
app.ws<Record<string, never>>('/cable', {
  maxPayloadLength: 65536,
  idleTimeout: 0,
  upgrade: (res, req, ctx) => {
    res.upgrade({}, req.getHeader('sec-websocket-key'), 'actioncable-v1-json', req.getHeader('sec-websocket-extensions'), ctx);
  },
  open: (ws) => { ws.send('{"type":"welcome","sid":"x"}'); },
  message: (ws, message) => {
    const cmd = JSON.parse(Buffer.from(message).toString()) as { command: string; identifier: string };
    if (cmd.command !== 'subscribe') return;
    const stream = (JSON.parse(cmd.identifier) as { stream_name: string }).stream_name;
    ws.subscribe(stream);
    ws.send(JSON.stringify({ identifier: cmd.identifier, type: 'confirm_subscription' }));
  },
});
app.post('/_broadcast', (res) => {
  const chunks: Buffer[] = [];
  res.onAborted(() => undefined);
  res.onData((chunk, last) => {
    chunks.push(Buffer.from(new Uint8Array(chunk)));
    if (!last) return;
    const msg = JSON.parse(Buffer.concat(chunks).toString()) as { stream: string; data: string };
    const identifier = JSON.stringify({ channel: '$pubsub', stream_name: msg.stream });
    app.publish(msg.stream, `{"identifier":${JSON.stringify(identifier)},"message":${msg.data}}`);
    res.cork(() => res.writeStatus('201 Created').end());
  });
});
app.listen('127.0.0.1', port, (s) => { if (!s) process.exit(1); console.log('ready'); });
