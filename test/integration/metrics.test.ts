import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, withServer, TEST_SECRET } from '../helpers/server.js';
import { RawClient, identifier } from '../helpers/ws-client.js';
import { broadcast, httpRequest, sleep } from '../helpers/http.js';
import { signToken } from '../helpers/tokens.js';
import { RpcApp, withRpcApp } from '../helpers/rpc-app.js';
import { deriveKey } from '../../src/auth/keys.js';
import { freePort } from '../helpers/tcp-proxy.js';
import { parsePrometheus } from '../helpers/prometheus.js';

describe('Prometheus metrics after a scripted scenario', () => {
  test('exact values of anycable-go counters and gauges, with prefix and tags', async () => {
    const key = deriveKey(TEST_SECRET, 'api-cable');
    await withRpcApp(['--public_streams',
      '--metrics_http', '/metrics', '--metrics_port', '0', '--metrics_tags', 'env:test,region:eu', '--ping_interval', '60'], async (server, app) => {
      const token = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 60 });
      const a = await RawClient.connect(`${server.url}?jid=${token}`);
      await a.next();
      const b = await RawClient.connect(`${server.url}?jid=${token}`);
      await b.next();
      for (let i = 0; i < 2; i++) {
        const bad = await RawClient.connect(`${server.url}?jid=garbage`);
        await bad.closed;
      }
      const id = identifier('$pubsub', { stream_name: 'm' });
      a.subscribe(id);
      await a.next();
      a.send('not json');
      a.send({ command: 'ping' });
      await a.next();
      await broadcast(server.http, { stream: 'm', data: '"x"' }, deriveKey(TEST_SECRET, 'broadcast-cable'));
      await broadcast(server.http, 'garbage', deriveKey(TEST_SECRET, 'broadcast-cable'));
      await a.next();
      const rpc = await RawClient.connect(`${server.url}?test=error`);
      await rpc.closed;
      await sleep(100);

      const scrape = await httpRequest(`${server.http}/metrics`, { headers: { Authorization: `Bearer ${key}` } });
      assert.equal(scrape.status, 200);
      const m = parsePrometheus(scrape.body);
      const v = (name: string): number | undefined => m.get(`anycable_go_${name}{env="test",region="eu"}`);
      assert.equal(v('clients_num'), 2);
      assert.equal(v('clients_uniq_num'), 1);
      assert.equal(v('broadcast_streams_num'), 1);
      assert.equal(v('failed_auths_total'), 2);
      assert.equal(v('client_msg_total'), 3, 'subscribe, garbage, ping');
      assert.equal(v('failed_client_msg_total'), 1);
      assert.equal(v('broadcast_msg_total'), 1);
      assert.equal(v('failed_broadcast_msg_total'), 1);
      assert.equal(v('rpc_call_total'), 1);
      assert.equal(v('rpc_error_total'), 0, 'an ERROR status is an answer, not a failed call');
      assert.equal(v('rpc_pending_num'), 0);
      assert.equal(v('disconnect_queue_size'), 0);
      // welcome×2 + 2 unauthorized + confirm + pong + 1 broadcast delivery
      assert.equal(v('server_msg_total'), 7);
      assert.ok((v('data_sent_total') ?? 0) > 0 && (v('data_rcvd_total') ?? 0) > 0);
      assert.ok(m.has('process_cpu_user_seconds_total{env="test",region="eu"}'), 'Node process metrics are exported');
      await a.close();
      await b.close();
    });
  });

  test('a slow client and RPC timeouts, retries and errors are counted exactly', async () => {
    const key = deriveKey(TEST_SECRET, 'api-cable');
    await withRpcApp(['--public_streams',
      '--metrics_http', '/metrics', '--rpc_command_timeout', '600', '--ws_max_pending_size', '65536'], async (server, app) => {
      const token = await signToken(TEST_SECRET, { ext: '{"user_id":"1"}' }, { expiresIn: 60 });
      const slow = await RawClient.connect(`${server.url}?jid=${token}`);
      await slow.next();
      const id = identifier('$pubsub', { stream_name: 'flood' });
      slow.subscribe(id);
      await slow.next();
      slow.pauseReading();
      const chunk = JSON.stringify('z'.repeat(16 * 1024));
      for (let i = 0; i < 800 && server.app.metrics.counters.disconnected_slow_clients_total === 0; i++) {
        await broadcast(server.http, { stream: 'flood', data: chunk }, deriveKey(TEST_SECRET, 'broadcast-cable'));
        await sleep(1);
      }
      for (let i = 0; i < 20 && server.app.metrics.counters.disconnected_slow_clients_total === 0; i++) await sleep(100);
      slow.resumeReading();
      await slow.closed;

      app.delayMs = 1000; // slower than the 600 ms budget: a timeout, not retried
      const timedOut = await RawClient.connect(server.url);
      assert.equal((await timedOut.closed).code, 1011);
      await app.stop(); // now UNAVAILABLE: retried after 100 and 200 ms, then given up (400 more would pass 600)
      const refused = await RawClient.connect(server.url);
      assert.equal((await refused.closed).code, 1011);

      const scrape = await httpRequest(`${server.http}/metrics`, { headers: { Authorization: `Bearer ${key}` } });
      const m = parsePrometheus(scrape.body);
      assert.equal(m.get('anycable_go_disconnected_slow_clients_total'), 1);
      assert.equal(m.get('anycable_go_rpc_call_total'), 2);
      assert.equal(m.get('anycable_go_rpc_timeout_total'), 1);
      assert.equal(m.get('anycable_go_rpc_retries_total'), 2);
      assert.equal(m.get('anycable_go_rpc_error_total'), 1);
      assert.equal(m.get('anycable_go_clients_num'), 0);
    });
  });

  test('--metrics_log prints counter deltas and gauges every interval', async () => {
    await withServer(['--noauth', '--norpc', '--metrics_log', '--metrics_rotate_interval', '1'], async (server) => {
      const client = await RawClient.connect(server.url);
      await client.next();
      client.send('not json');
      client.send({ command: 'ping' });
      await client.next();
      const metricLines = (): Array<Record<string, unknown>> => server.logs.records().filter((r) => r.msg === 'metrics');
      for (let i = 0; i < 40 && metricLines().length < 2; i++) await sleep(100);
      const [first, second] = metricLines();
      assert.equal(first?.component, 'metrics');
      assert.equal(first?.failed_client_msg_total, 1);
      assert.equal(first?.client_msg_total, 2);
      assert.equal(first?.clients_num, 1);
      assert.equal(second?.failed_client_msg_total, 0, 'counters are logged as deltas');
      assert.equal(second?.clients_num, 1, 'gauges as values');
      await client.close();
    });
  });

  test('a separate --metrics_port serves /metrics without the API key; --metrics_prefix changes names', async () => {
    const port = await freePort();
    await withServer(['--secret', TEST_SECRET, '--norpc', '--metrics_http', '/metrics', '--metrics_port', String(port), '--metrics_prefix', 'cc_'], async (server) => {
      assert.equal(server.app.metricsPort, port);
      const scrape = await httpRequest(`http://127.0.0.1:${port}/metrics`);
      assert.equal(scrape.status, 200);
      assert.equal(parsePrometheus(scrape.body).get('cc_clients_num'), 0);
      assert.equal((await httpRequest(`${server.http}/metrics`)).status, 404, 'not on the main port then');
    });
  });

  test('connection log lines carry the sid and the component name', async () => {
    await withServer(['--noauth', '--norpc'], async (server) => {
      const client = await RawClient.connect(server.url);
      const { sid } = (await client.next()) as { sid: string };
      client.send('not json');
      client.send({ command: 'ping' });
      await client.next();
      const dropped = server.logs.records().find((r) => r.msg === 'client frame dropped');
      assert.equal(dropped?.sid, sid);
      assert.equal(dropped?.component, 'node');
      await client.close();
    });
  });
});
