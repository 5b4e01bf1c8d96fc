import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { createLogger } from '../../src/logging/logger.js';
import { LogCapture } from '../helpers/server.js';
import { parsePublicationsText } from '../../src/broadcast/message.js';
import { captureUpgrade } from '../../src/server/request-info.js';
import { runRoute } from '../../src/server/http-server.js';
import type { HttpReply, HttpRequestView } from '../../src/server/http-route.js';
import { nodeHarness, HeldController, ok, settle } from '../helpers/node-fakes.js';

describe('a broadcast is parsed once per node', () => {
  test('string data: the body parse plus one parse of data; fan-out parses nothing', async () => {
    const app = new HeldController();
    app.immediate = () => ok({ streams: ['s'] });
    const h = nodeHarness(app);
    const a = h.connect('a');
    const b = h.connect('b');
    await settle();
    h.send(a.session, { command: 'subscribe', identifier: 'A' });
    h.send(b.session, { command: 'subscribe', identifier: 'B' });
    await settle();
    const cases: Array<[string, string]> = [
      [JSON.stringify({ stream: 's', data: '{"text":"hi"}' }), '{"text":"hi"}'],
      [JSON.stringify({ stream: 's', data: 'plain words' }), '"plain words"'],
      [JSON.stringify({ stream: 's', data: { text: 'obj' } }), '{"text":"obj"}'],
    ];
    const parse = JSON.parse;
    for (const [body, message] of cases) {
      let parses = 0;
      JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => { parses++; return parse(text, reviver); }) as typeof JSON.parse;
      let delivered;
      try {
        const parsed = parsePublicationsText(body);
        assert.ok(parsed.ok);
        for (const pub of parsed.items) h.node.deliver(pub);
        delivered = parses;
      } finally {
        JSON.parse = parse;
      }
      const objectData = body.includes('"data":{');
      assert.equal(delivered, objectData ? 1 : 2, `${body}: body once, data at most once, none per route or socket`);
      assert.equal(a.socket.frames.at(-1), `{"identifier":"A","message":${message}}`);
      assert.equal(b.socket.frames.at(-1), `{"identifier":"B","message":${message}}`);
    }
  });
});

describe('proxied headers are captured only when RPC will read them', () => {
  const fakeUpgrade = (headers: Record<string, string>): [HttpResponse, HttpRequest] => {
    const req = { getUrl: () => '/cable', getQuery: () => 'a=1', getHeader: (name: string) => headers[name] ?? '' } as unknown as HttpRequest;
    const res = { getRemoteAddressAsText: () => new TextEncoder().encode('10.0.0.1').buffer } as unknown as HttpResponse;
    return [res, req];
  };
  const cookie = `session=${'c'.repeat(2048)}`;

  test('with RPC: the listed headers plus REMOTE_ADDR', () => {
    const [res, req] = fakeUpgrade({ host: 'example.com', cookie });
    const captured = captureUpgrade(res, req, { proxiedHeaders: ['cookie'], captureHeaders: true, jwtParam: 'jid', secure: false, jwtEnabled: true });
    assert.deepEqual(captured.info.headers, { cookie, REMOTE_ADDR: '10.0.0.1' });
    assert.equal(captured.info.url, 'http://example.com/cable?a=1');
  });

  test('under --norpc: one shared empty object, the cookie is not kept per connection', () => {
    const [res, req] = fakeUpgrade({ host: 'example.com', cookie });
    const opts = { proxiedHeaders: ['cookie'], captureHeaders: false, jwtParam: 'jid', secure: false, jwtEnabled: true };
    const first = captureUpgrade(res, req, opts);
    const second = captureUpgrade(res, req, opts);
    assert.deepEqual(first.info.headers, {});
    assert.equal(first.info.headers, second.info.headers);
  });
});

describe('HTTP handler failures', () => {
  test('a rejected handler answers 500 with a JSON error and logs an error line', async () => {
    const logs = new LogCapture();
    const log = createLogger({ level: 'info', format: 'json', destination: logs });
    const answers: Array<[string, unknown]> = [];
    const reply: HttpReply = {
      aborted: false, finished: false, onAbort: () => undefined,
      send: () => undefined,
      json: (status, value) => { answers.push([status, value]); },
    };
    const req = {} as HttpRequestView;
    runRoute({ method: 'post', pattern: '/boom', handle: async () => { throw new Error('kaboom'); } }, reply, req, log);
    runRoute({ method: 'get', pattern: '/sync', handle: () => { throw new Error('sync kaboom'); } }, reply, req, log);
    await settle();
    assert.deepEqual(answers, [['500 Internal Server Error', { error: 'internal_error' }], ['500 Internal Server Error', { error: 'internal_error' }]]);
    const records = logs.records().filter((r) => r.msg === 'http handler failed');
    assert.deepEqual(records.map((r) => [r.level, r.path, r.err]).sort(), [[50, '/boom', 'kaboom'], [50, '/sync', 'sync kaboom']]);
  });
});
