import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

describe('broker configuration', () => {
  test('defaults: no broker, anycable-go history and session limits, pong timeout off', () => {
    const { config } = loadConfig([], {});
    assert.equal(config.broker, 'none');
    assert.equal(config.historyLimit, 100);
    assert.equal(config.historyTtlS, 300);
    assert.equal(config.sessionsTtlS, 300);
    assert.equal(config.pongTimeoutS, 0);
    assert.equal(config.pubsub, 'none');
    assert.equal(config.redisxStream, '__anycable__');
    assert.equal(config.redisxGroup, 'bx');
  });

  test('--broker alone means memory, at the end or before another flag; env and values work', () => {
    assert.equal(loadConfig(['--broker'], {}).config.broker, 'memory');
    assert.equal(loadConfig(['--broker', '--port', '9000'], {}).config.broker, 'memory');
    assert.equal(loadConfig(['--broker=redis'], {}).config.broker, 'redis');
    assert.equal(loadConfig(['--broker', 'nats'], {}).config.broker, 'nats');
    assert.equal(loadConfig([], { ANYCABLE_BROKER: 'memory' }).config.broker, 'memory');
  });

  test('a shared broker or redisx turns pub/sub on unless it was chosen', () => {
    assert.equal(loadConfig(['--broker=redis'], {}).config.pubsub, 'redis');
    assert.equal(loadConfig(['--broker=nats'], {}).config.pubsub, 'nats');
    assert.equal(loadConfig(['--broadcast_adapter=http,redisx'], {}).config.pubsub, 'redis');
    assert.equal(loadConfig(['--broker=memory'], {}).config.pubsub, 'none');
    assert.equal(loadConfig(['--broker=redis', '--pubsub=nats'], {}).config.pubsub, 'nats');
  });

  test('the broker preset picks redis when a Redis URL is set, nats when NATS servers are, memory otherwise', () => {
    const redis = loadConfig(['--presets=broker'], { REDIS_URL: 'redis://r:6379' }).config;
    assert.deepEqual([redis.broker, redis.broadcastAdapters, redis.pubsub], ['redis', ['http', 'redisx'], 'redis']);
    const nats = loadConfig(['--presets', 'broker', '--nats_servers', 'nats://n:4222'], {}).config;
    assert.deepEqual([nats.broker, nats.broadcastAdapters, nats.pubsub], ['nats', ['http'], 'nats']);
    const memory = loadConfig([], { ANYCABLE_PRESETS: 'broker' }).config;
    assert.deepEqual([memory.broker, memory.broadcastAdapters, memory.pubsub], ['memory', ['http'], 'none']);
    const overridden = loadConfig(['--presets=broker', '--broker=none', '--broadcast_adapter=http'], { REDIS_URL: 'redis://r' }).config;
    assert.deepEqual([overridden.broker, overridden.broadcastAdapters], ['none', ['http']]);
  });

  test('invalid values and fan-out adapters with a shared broker are reported together', () => {
    assert.throws(() => loadConfig(['--broker=kafka', '--history_limit=0', '--sessions_ttl=-1', '--presets=kubernetes'], {}), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.problems.length, 4, err.problems.join('\n'));
      return true;
    });
    assert.throws(() => loadConfig(['--broker=redis', '--broadcast_adapter=http,redis'], {}), /redis and nats deliver every broadcast to every node/);
    assert.equal(loadConfig(['--broker=memory', '--broadcast_adapter=redis'], {}).config.broker, 'memory');
  });
});
