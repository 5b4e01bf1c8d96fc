// What a hand-written Node server gives: the same subset on the `ws` library, fan-out in a JS loop.
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const port = Number(process.argv[2] ?? 9002);
const streams = new Map<string, Set<WebSocket>>();
const server = createServer((req, res) => {
  if (req.method !== 'POST') { res.writeHead(404).end(); return; }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const msg = JSON.parse(Buffer.concat(chunks).toString()) as { stream: string; data: string };
    const identifier = JSON.stringify({ channel: '$pubsub', stream_name: msg.stream });
    const frame = `{"identifier":${JSON.stringify(identifier)},"message":${msg.data}}`;
    for (const ws of streams.get(msg.stream) ?? []) ws.send(frame);
    res.writeHead(201).end();
  });
});
const wss = new WebSocketServer({ server, path: '/cable', handleProtocols: () => 'actioncable-v1-json' });
wss.on('connection', (ws) => {
  ws.send('{"type":"welcome","sid":"x"}');
  ws.on('message', (data) => {
    const cmd = JSON.parse(data.toString()) as { command: string; identifier: string };
    if (cmd.command !== 'subscribe') return;
    const stream = (JSON.parse(cmd.identifier) as { stream_name: string }).stream_name;
    let set = streams.get(stream);
    if (!set) streams.set(stream, (set = new Set()));
    set.add(ws);
    ws.on('close', () => set?.delete(ws));
    ws.send(JSON.stringify({ identifier: cmd.identifier, type: 'confirm_subscription' }));
  });
});
server.listen(port, '127.0.0.1', () => console.log('ready'));
