// A minimal WebSocket client over a raw TCP socket: enough of RFC 6455 to open a connection,
// send small masked text frames and split incoming frames. It costs far less per connection than
// the `ws` package, so the load client measures the server, not itself.
import { connect, type Socket } from 'node:net';

const HANDSHAKE_END = Buffer.from('\r\n\r\n');

export class RawWs {
  private buffer: Buffer = Buffer.alloc(0);
  private upgraded = false;
  readonly socket: Socket;
  /** Called with every text frame's payload; the buffer is only valid during the call. */
  onFrame: (payload: Buffer) => void = () => undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
  }

  /** `onFrame` is set before any byte arrives: the first frames often share a packet with the 101. */
  static open(port: number, pathAndQuery: string, onFrame: (payload: Buffer) => void, protocol = 'actioncable-v1-json'): Promise<RawWs> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      const ws = new RawWs(socket);
      ws.onFrame = onFrame;
      socket.setNoDelay(true);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.write(`GET ${pathAndQuery} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`);
      });
      socket.on('data', (chunk: Buffer) => {
        ws.buffer = ws.buffer.length === 0 ? chunk : Buffer.concat([ws.buffer, chunk]);
        if (!ws.upgraded) {
          const end = ws.buffer.indexOf(HANDSHAKE_END);
          if (end === -1) return;
          if (!ws.buffer.subarray(0, 12).toString().includes('101')) {
            reject(new Error(`upgrade refused: ${ws.buffer.subarray(0, 40).toString()}`));
            socket.destroy();
            return;
          }
          ws.upgraded = true;
          ws.buffer = ws.buffer.subarray(end + 4);
          resolve(ws);
        }
        ws.drainFrames();
      });
    });
  }

  private drainFrames(): void {
    let buf = this.buffer;
    for (;;) {
      if (buf.length < 2) break;
      let length = buf[1]! & 0x7f;
      let header = 2;
      if (length === 126) {
        if (buf.length < 4) break;
        length = buf.readUInt16BE(2);
        header = 4;
      } else if (length === 127) {
        if (buf.length < 10) break;
        length = Number(buf.readBigUInt64BE(2));
        header = 10;
      }
      if (buf.length < header + length) break;
      if ((buf[0]! & 0x0f) === 0x1) this.onFrame(buf.subarray(header, header + length));
      buf = buf.subarray(header + length);
    }
    this.buffer = buf;
  }

  /** A masked text frame (mask key 0: legal, and no payload transform needed). */
  send(text: string): void {
    const payload = Buffer.from(text);
    const header = payload.length < 126
      ? Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0])
      : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff, 0, 0, 0, 0]);
    this.socket.write(Buffer.concat([header, payload]));
  }

  destroy(): void {
    this.socket.destroy();
  }
}
