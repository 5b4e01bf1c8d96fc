import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

describe('anycable-go configuration surface', () => {
  test('deprecated names are read as their successors, with a warning naming both', () => {
    const flags = loadConfig(['--jwt_id_key', 'k1-0123456789abcdef', '--jwt-id-param=tok', '--jwt_id_enforce', '--http_broadcast_secret', 'bk', '--metrics_log_interval', '7'], {});
    assert.deepEqual(flags.config.jwtSecrets, ['k1-0123456789abcdef']);
    assert.equal(flags.config.jwtParam, 'tok');
    assert.equal(flags.config.enforceJwt, true);
    assert.equal(flags.config.broadcastKey, 'bk');
    assert.equal(flags.config.metricsRotateIntervalS, 7);
    assert.ok(flags.warnings.includes('--jwt_id_key is anycable-go\'s deprecated name of --jwt_secret: read as such'), flags.warnings.join('\n'));
    const env = loadConfig([], { ANYCABLE_JWT_ID_KEY: 'k2-0123456789abcdef', ANYCABLE_HTTP_BROADCAST_SECRET: 'bk2' });
    assert.deepEqual(env.config.jwtSecrets, ['k2-0123456789abcdef']);
    assert.equal(env.config.broadcastKey, 'bk2');
    assert.ok(env.warnings.some((w) => w.startsWith('ANYCABLE_JWT_ID_KEY is anycable-go\'s deprecated name of ANYCABLE_JWT_SECRET')));
    // The current name wins over the deprecated one.
    assert.deepEqual(loadConfig([], { ANYCABLE_JWT_ID_KEY: 'old', ANYCABLE_JWT_SECRET: 'new' }).config.jwtSecrets, ['new']);
  });

  test('--turbo_rails_key switches Turbo Streams on with that secret; an explicit --turbo_streams=false still wins', () => {
    const on = loadConfig(['--turbo_rails_key', 'tk'], {}).config;
    assert.equal(on.turboStreams, true);
    assert.equal(on.turboStreamsSecret, 'tk');
    assert.equal(loadConfig(['--turbo_rails_key=tk', '--turbo_streams=false'], {}).config.turboStreams, false);
    assert.equal(loadConfig([], { ANYCABLE_TURBO_RAILS_KEY: 'tk' }).config.turboStreams, true);
  });

  test('--disable_disconnect means --disconnect_mode=never', () => {
    assert.equal(loadConfig(['--disable_disconnect'], {}).config.disconnectMode, 'never');
    assert.equal(loadConfig(['--disable_disconnect', 'false'], {}).config.disconnectMode, 'auto');
    assert.equal(loadConfig([], { ANYCABLE_DISABLE_DISCONNECT: 'true' }).config.disconnectMode, 'never');
    assert.equal(loadConfig(['--disable_disconnect', '--port', '9'], {}).config.port, 9, 'a bare bool does not swallow the next flag');
  });

  test('options of features cablecat lacks are accepted and named in a warning; their values are consumed', () => {
    const req = loadConfig(['--redis_sentinel_discovery_interval', '30',
      '--embed_nats', '--statsd_host=localhost:8125', '--enable_ws_compression', '--port', '9001'], {});
    assert.equal(req.config.port, 9001);
    const text = req.warnings.join('\n');
    assert.match(text, /--redis_sentinel_discovery_interval is ignored/);
    assert.match(text, /--embed_nats is ignored: there is no embedded NATS/);
    assert.match(text, /--statsd_host is ignored/);
    const env = loadConfig([], { ANYCABLE_ENATS_ADDR: 'nats://0.0.0.0:4222' });
    assert.ok(env.warnings.some((w) => w.startsWith('ANYCABLE_ENATS_ADDR is ignored: there is no embedded NATS')));
  });

  test('--sse and --sse_path are real options now: read, validated, no warning', () => {
    const req = loadConfig(['--sse', '--sse_path', '/sse', '--port', '9001'], {});
    assert.equal(req.config.sse, true);
    assert.equal(req.config.ssePath, '/sse');
    assert.equal(req.config.port, 9001);
    assert.deepEqual(req.warnings, []);
    const env = loadConfig([], { ANYCABLE_SSE: 'true' });
    assert.equal(env.config.sse, true);
    assert.equal(env.config.ssePath, '/events');
    assert.deepEqual(env.warnings, []);
    assert.throws(() => loadConfig(['--sse_path', 'events'], {}), (err) => err instanceof ConfigError && err.problems.includes('--sse_path: "events" must start with /'));
  });

  test('unknown ANYCABLE_* env vars get one warning naming them; the anycable gem\'s own settings are quiet', () => {
    const req = loadConfig([], { ANYCABLE_BOGUS: '1', ANYCABLE_ALSO_BOGUS: '2', ANYCABLE_HTTP_BROADCAST_URL: 'http://x', ANYCABLE_PORT: '9000', OTHER: 'x' });
    assert.deepEqual(req.warnings, ['unknown ANYCABLE_* environment variables (ignored): ANYCABLE_ALSO_BOGUS, ANYCABLE_BOGUS']);
    assert.deepEqual(loadConfig([], { ANYCABLE_SECRET: 's', ANYCABLE_HTTP_BROADCAST_URL: 'u', ANYCABLE_DISABLE_TELEMETRY: 'true' }).warnings, []);
  });

  test('an unknown flag is still an error (a typo must not pass silently)', () => {
    assert.throws(() => loadConfig(['--prot', '80'], {}), (err) => err instanceof ConfigError && err.problems.includes('unknown flag --prot'));
  });

  test('presets: fly and heroku listen on 0.0.0.0, detected from their env; explicit values and --presets=none win', () => {
    const fly = { FLY_APP_NAME: 'app', FLY_REGION: 'ams', FLY_ALLOC_ID: 'x' };
    const detected = loadConfig([], fly);
    assert.equal(detected.config.host, '0.0.0.0');
    assert.ok(detected.warnings.includes('presets detected from the environment: fly (--presets=none turns them off)'));
    assert.equal(loadConfig(['--host', '127.0.0.1'], fly).config.host, '127.0.0.1');
    assert.equal(loadConfig(['--presets', 'none'], fly).config.host, 'localhost');
    assert.equal(loadConfig([], { ...fly, ANYCABLE_FLY_RPC_APP_NAME: 'web' }).config.rpcHost, 'dns:///ams.web.internal:50051');
    assert.equal(loadConfig([], { HEROKU_APP_ID: 'a', HEROKU_DYNO_ID: 'b' }).config.host, '0.0.0.0');
    assert.equal(loadConfig(['--presets', 'heroku'], {}).config.host, '0.0.0.0');
    assert.equal(loadConfig(['--presets=broker,fly'], {}).config.broker, 'memory');
  });
});

test('the CLI starts with an anycable-go configuration and logs the warnings once', async () => {
  const cli = join(process.cwd(), 'dist/src/cli/main.js');
  const child = spawn(process.execPath, [cli, '--port', '0', '--http_broadcast_port', '0', '--host', '127.0.0.1', '--norpc', '--log_format', 'json',
    '--secret', 'a-long-enough-secret-value', '--disable_disconnect', '--embed_nats', '--jwt_id_key', 'another-long-secret-value', '--presets', 'heroku'],
  { env: { PATH: process.env.PATH, ANYCABLE_WHATEVER: 'x', ANYCABLE_HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  // Generous: on a loaded machine start-up can take seconds; a kill before the handlers exist would exit by signal.
  for (let i = 0; i < 600 && !out.includes('cablecat started'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(out.includes('cablecat started'), 'the server started');
  child.kill('SIGTERM');
  assert.equal(await exit, 0);
  const warnings = out.split('\n').filter((l) => l.includes('"level":40') || l.includes('"level":"warn"')).map((l) => (JSON.parse(l) as { msg: string }).msg);
  assert.deepEqual(warnings.sort(), [
    '--disable_disconnect is anycable-go\'s deprecated name of --disconnect_mode=never: read as such',
    '--embed_nats is ignored: there is no embedded NATS: run nats-server and point --nats_servers at it',
    '--jwt_id_key is anycable-go\'s deprecated name of --jwt_secret: read as such',
    'unknown ANYCABLE_* environment variables (ignored): ANYCABLE_WHATEVER',
  ]);
});
