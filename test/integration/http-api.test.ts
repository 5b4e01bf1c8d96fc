import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startServer, withServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { rawHttp, requestText, REQUEST_FORMS, type RequestForm } from '../helpers/raw-http.js';
import { httpRequest } from '../helpers/http.js';
import { freePort } from '../helpers/tcp-proxy.js';
import { deriveKey } from '../../src/auth/keys.js';
import { targetPath } from '../../src/server/api-listener.js';
import { streamSubscriber } from '../helpers/streams.js';

const BROADCAST_KEY = deriveKey(TEST_SECRET, 'broadcast-cable');
const API_KEY = deriveKey(TEST_SECRET, 'api-cable');
const NO_HOST = { error: 'bad_request', detail: 'HTTP/1.1 request without a Host header' };

/** The bytes Ruby's Net::HTTP writes for the anycable gem's HTTP broadcaster (`Net::HTTP::Post.new(url_string)`). */
function gemBroadcast(port: number, payload: string, key?: string): string {
  const headers = [
    'Content-Type: application/json',
    ...(key ? [`Authorization: Bearer ${key}`] : []),
    'Accept-Encoding: gzip;q=1.0,deflate;q=0.6,identity;q=0.3',
    'Accept: */*',
    'User-Agent: Ruby',
    `Host: localhost:${port}`,
    `Content-Length: ${Buffer.byteLength(payload)}`,
  ];
  return `POST http://localhost:${port}/_broadcast HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n${payload}`;
}


function apiPort(server: TestServer): number {
  return server.app.apiPort;
}

describe('the HTTP API port answers every HTTP/1.x request form', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(['--secret', TEST_SECRET, '--norpc', '--public_streams', '--metrics_http', '/metrics']);
  });
  after(() => server.stop());

  const answered = REQUEST_FORMS.filter((f) => f !== 'no Host');

  for (const form of answered) {
    test(`${form}: GET and HEAD /health`, async () => {
      const port = apiPort(server);
      const get = await rawHttp(port, requestText(form, port, 'GET', '/health'));
      assert.equal(get.status, 200);
      assert.equal(get.headers['content-type'], 'text/plain');
      assert.equal(get.body, 'Ok');
      const head = await rawHttp(port, requestText(form, port, 'HEAD', '/health'), { head: true });
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], '2');
      assert.equal(head.body, '');
    });

    test(`${form}: POST /_broadcast reaches a subscriber (201); a wrong key gets 401`, async () => {
      const stream = `api-${form}-${Math.random().toString(36).slice(2)}`;
      const { client, id } = await streamSubscriber(server, stream);
      const port = apiPort(server);
      const payload = JSON.stringify({ stream, data: JSON.stringify({ form }) });
      const ok = await rawHttp(port, requestText(form, port, 'POST', '/_broadcast', { Authorization: `Bearer ${BROADCAST_KEY}`, 'Content-Type': 'application/json' }, payload));
      assert.equal(ok.status, 201);
      assert.equal(ok.body, '');
      assert.deepEqual(await client.next(), { identifier: id, message: { form } });
      const bad = await rawHttp(port, requestText(form, port, 'POST', '/_broadcast', { Authorization: 'Bearer wrong' }, payload));
      assert.equal(bad.status, 401);
      assert.deepEqual(JSON.parse(bad.body), { error: 'invalid_credentials' });
      await client.close();
    });

    test(`${form}: POST /auth/token mints a token with the API key`, async () => {
      const port = apiPort(server);
      const answer = await rawHttp(port, requestText(form, port, 'POST', '/auth/token', { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
        JSON.stringify({ identifiers: { user_id: 'api' }, ttl: 60 })));
      assert.equal(answer.status, 200);
      const body = JSON.parse(answer.body) as { access_token: string; token_type: string; expires_in: number };
      assert.equal(body.token_type, 'Bearer');
      assert.equal(body.expires_in, 60);
      const client = await RawClient.connect(`${server.url}?jid=${body.access_token}`);
      assert.equal(((await client.next()) as { type: string }).type, 'welcome');
      await client.close();
    });

    test(`${form}: GET /metrics with the API key; 401 without`, async () => {
      const port = apiPort(server);
      const ok = await rawHttp(port, requestText(form, port, 'GET', '/metrics', { Authorization: `Bearer ${API_KEY}` }));
      assert.equal(ok.status, 200);
      assert.match(ok.body, /^anycable_go_clients_num \d+$/m);
      const denied = await rawHttp(port, requestText(form, port, 'GET', '/metrics'));
      assert.equal(denied.status, 401);
      assert.deepEqual(JSON.parse(denied.body), { error: 'invalid_credentials' });
    });

    test(`${form}: unknown path 404, wrong method 405 with Allow`, async () => {
      const port = apiPort(server);
      const missing = await rawHttp(port, requestText(form, port, 'GET', '/nowhere'));
      assert.equal(missing.status, 404);
      assert.deepEqual(JSON.parse(missing.body), { error: 'not_found' });
      const wrong = await rawHttp(port, requestText(form, port, 'GET', '/_broadcast'));
      assert.equal(wrong.status, 405);
      assert.equal(wrong.headers.allow, 'POST');
      assert.deepEqual(JSON.parse(wrong.body), { error: 'method_not_allowed' });
      const health = await rawHttp(port, requestText(form, port, 'DELETE', '/health'));
      assert.equal(health.status, 405);
      assert.equal(health.headers.allow, 'GET, HEAD');
    });
  }

  test('HTTP/1.1 without Host: 400 with a JSON reason on every route, connection closed, counted', async () => {
    const port = apiPort(server);
    const before = server.app.metrics.counters.http_bad_requests_total;
    const requests: Array<[string, string, Record<string, string>, string]> = [
      ['GET', '/health', {}, ''],
      ['HEAD', '/health', {}, ''],
      ['POST', '/_broadcast', { Authorization: `Bearer ${BROADCAST_KEY}` }, '{"stream":"x","data":"1"}'],
      ['POST', '/auth/token', { Authorization: `Bearer ${API_KEY}` }, '{"identifiers":{}}'],
      ['GET', '/metrics', { Authorization: `Bearer ${API_KEY}` }, ''],
    ];
    for (const [method, path, headers, body] of requests) {
      const answer = await rawHttp(port, requestText('no Host', port, method, path, headers, body), { head: method === 'HEAD' });
      assert.equal(answer.status, 400, `${method} ${path}`);
      assert.equal(answer.headers.connection, 'close');
      if (method !== 'HEAD') assert.deepEqual(JSON.parse(answer.body), NO_HOST);
    }
    assert.equal(server.app.metrics.counters.http_bad_requests_total, before + requests.length);
  });

  test('a request node cannot parse at all gets a JSON 400 at once', async () => {
    const port = apiPort(server);
    const before = server.app.metrics.counters.http_bad_requests_total;
    const answer = await rawHttp(port, 'HELLO THERE\r\n\r\n');
    assert.equal(answer.status, 400);
    assert.deepEqual(JSON.parse(answer.body), { error: 'bad_request' });
    assert.equal(server.app.metrics.counters.http_bad_requests_total, before + 1);
  });

  test('a broadcast posted exactly as the anycable gem sends it reaches a WebSocket subscriber', async () => {
    const stream = `gem-${Math.random().toString(36).slice(2)}`;
    const { client, id } = await streamSubscriber(server, stream);
    const port = apiPort(server);
    const answer = await rawHttp(port, gemBroadcast(port, JSON.stringify({ stream, data: JSON.stringify({ text: 'from rails' }) }), BROADCAST_KEY));
    assert.equal(answer.statusLine, 'HTTP/1.1 201 Created');
    assert.deepEqual(await client.next(), { identifier: id, message: { text: 'from rails' } });
    // The gem's remote disconnect command takes the same path.
    const disconnect = await rawHttp(port, gemBroadcast(port, JSON.stringify({ command: 'disconnect', payload: { identifier: '{"user_id":"1"}', reconnect: false } }), BROADCAST_KEY));
    assert.equal(disconnect.status, 201);
    assert.deepEqual(await client.next(), { type: 'disconnect', reason: 'remote', reconnect: false });
    await client.close();
  });

  test('kept-alive connection: several broadcasts in a row, then close', async () => {
    const stream = `ka-${Math.random().toString(36).slice(2)}`;
    const { client, id } = await streamSubscriber(server, stream);
    const port = apiPort(server);
    const one = (n: number): string => {
      const body = JSON.stringify({ stream, data: String(n) });
      return `POST http://localhost:${port}/_broadcast HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${BROADCAST_KEY}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    };
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => { text += d.toString(); });
    socket.write(one(1) + one(2) + one(3));
    for (const n of [1, 2, 3]) assert.deepEqual(await client.next(), { identifier: id, message: n });
    socket.destroy();
    assert.equal(text.split('HTTP/1.1 201 Created').length - 1, 3);
    await client.close();
  });
});

describe('the main (uWS) port', () => {
  test('HEAD /health answers as GET does, also pipelined on a kept-alive connection', async () => {
    await withServer(['--noauth', '--norpc'], async (server) => {
      const head = await rawHttp(server.port, requestText('origin-form', server.port, 'HEAD', '/health'), { head: true });
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], '2');
      assert.equal(head.headers['content-type'], 'text/plain');
      const get = await httpRequest(`${server.http}/health`);
      assert.equal(get.status, 200);
      assert.equal(get.body, 'Ok');
      // HEAD, GET on one connection: the HEAD answer must not leave uWS waiting for a body.
      const text = await new Promise<string>((resolve) => {
        const socket = connect(server.port, '127.0.0.1', () => socket.write('HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
        let data = '';
        socket.on('data', (d: Buffer) => { data += d.toString(); });
        socket.on('close', () => resolve(data));
      });
      assert.equal(text.split('HTTP/1.1 200 OK').length - 1, 2);
      assert.ok(text.endsWith('\r\n\r\nOk'), text);
      const wrong = await httpRequest(`${server.http}/health`, { method: 'POST' });
      assert.equal(wrong.status, 405);
      assert.equal(wrong.headers.allow, 'GET, HEAD');
    });
  });

  test('without a broadcast key, /_broadcast is only on the API port (as anycable-go keeps it off the main port)', async () => {
    await withServer(['--public', '--norpc'], async (server) => {
      const main = await httpRequest(`${server.http}/_broadcast`, { method: 'POST', body: '{"stream":"s","data":"1"}' });
      assert.equal(main.status, 404);
      const api = await httpRequest(`${server.api}/_broadcast`, { method: 'POST', body: '{"stream":"s","data":"1"}' });
      assert.equal(api.status, 201);
    });
  });

  test('--http_broadcast_port equal to --port serves broadcasts on the main port only', async () => {
    const port = await freePort();
    await withServer(['--public', '--norpc', '--port', String(port), '--http_broadcast_port', String(port)], async (server) => {
      assert.equal(server.app.apiPort, 0);
      assert.equal(server.port, port);
      const answer = await httpRequest(`${server.http}/_broadcast`, { method: 'POST', body: '{"stream":"s","data":"1"}' });
      assert.equal(answer.status, 201);
    });
  });

  test('without the http broadcast adapter there is no API listener', async () => {
    await withServer(['--noauth', '--norpc', '--broadcast_adapter', 'redis', '--redis_channel', `none-${Math.random()}`], async (server) => {
      assert.equal(server.app.apiPort, 0);
    });
  });
});

test('a taken API port fails the start with an error naming it, and frees the main port', async () => {
  const { createServer } = await import('node:net');
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const taken = (holder.address() as { port: number }).port;
  const mainPort = await freePort();
  try {
    await assert.rejects(startServer(['--noauth', '--norpc', '--port', String(mainPort), '--http_broadcast_port', String(taken)]),
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken} for the HTTP API \\(EADDRINUSE\\): set --http_broadcast_port to a free port`));
    // The main port was released: a server starts on it.
    await withServer(['--noauth', '--norpc', '--port', String(mainPort)], async (server) => assert.equal(server.port, mainPort));
  } finally {
    holder.close();
  }
});

describe('separate metrics port on node:http', () => {
  test('answers absolute-form and HTTP/1.0 scrapes', async () => {
    const port = await freePort();
    await withServer(['--noauth', '--norpc', '--metrics_http', '/metrics', '--metrics_port', String(port)], async (server) => {
      assert.equal(server.app.metricsPort, port);
      for (const form of ['absolute-form', 'HTTP/1.0'] as RequestForm[]) {
        const answer = await rawHttp(port, requestText(form, port, 'GET', '/metrics'));
        assert.equal(answer.status, 200, form);
        assert.match(answer.body, /^anycable_go_clients_num 0$/m);
      }
    });
  });
});

test('targetPath reduces origin-form and absolute-form targets to the path', () => {
  assert.equal(targetPath('/_broadcast?x=1'), '/_broadcast');
  assert.equal(targetPath('http://localhost:8090/_broadcast'), '/_broadcast');
  assert.equal(targetPath('HTTPS://h/a/b?c'), '/a/b');
  assert.equal(targetPath('http://h'), '/');
  assert.equal(targetPath('*'), null);
  assert.equal(targetPath('localhost:8090'), null);
});

test('the API port defaults to 8090, the anycable gem\'s default broadcast URL; it must differ from --metrics_port', async () => {
  const { loadConfig } = await import('../../src/config/load.js');
  assert.equal(loadConfig([], {}).config.httpBroadcastPort, 8090);
  assert.equal(loadConfig([], { ANYCABLE_HTTP_BROADCAST_PORT: '9999' }).config.httpBroadcastPort, 9999);
  assert.throws(() => loadConfig(['--metrics_port', '9100', '--http_broadcast_port', '9100'], {}), /--metrics_port and --http_broadcast_port are both 9100/);
});
