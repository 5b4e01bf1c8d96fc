import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { deriveKey, safeEqual } from '../../src/auth/keys.js';
import { JwtVerifier } from '../../src/auth/jwt.js';
import { decodeClientFrame } from '../../src/protocol/decoder.js';
import { messageJsonFromData } from '../../src/protocol/messages.js';
import { signStreamName, verifyStreamName } from '../../src/streams/verifier.js';
import { parsePublications } from '../../src/broadcast/message.js';
import { checkSecrets } from '../../src/cli/secure-start.js';
import { signToken } from '../helpers/tokens.js';

describe('config', () => {
  test('defaults match anycable-go', () => {
    const { config } = loadConfig([], {});
    assert.equal(config.host, 'localhost');
    assert.equal(config.port, 8080);
    assert.deepEqual(config.paths, ['/cable']);
    assert.equal(config.healthPath, '/health');
    assert.equal(config.jwtParam, 'jid');
    assert.equal(config.rpcHost, 'localhost:50051');
    assert.deepEqual(config.headers, ['cookie']);
    assert.equal(config.pingIntervalS, 3);
    assert.equal(config.maxMessageSize, 65536);
    assert.equal(config.shutdownTimeoutMs, 30_000);
    assert.equal(config.rpcConcurrency, 28);
    assert.deepEqual(config.broadcastAdapters, ['http']);
    assert.equal(config.metricsPrefix, 'anycable_go_');
    assert.ok(Object.isFrozen(config));
  });

  test('defaults < env < flags; PORT is an alias; dashes equal underscores', () => {
    assert.equal(loadConfig([], { PORT: '9000' }).config.port, 9000);
    assert.equal(loadConfig([], { PORT: '9000', ANYCABLE_PORT: '9001' }).config.port, 9001);
    assert.equal(loadConfig(['--port=9002'], { ANYCABLE_PORT: '9001' }).config.port, 9002);
    assert.equal(loadConfig(['--health-path', '/up'], {}).config.healthPath, '/up');
    assert.equal(loadConfig(['--noauth'], {}).config.noauth, true);
    assert.equal(loadConfig([], { ANYCABLE_NOAUTH: 'true' }).config.noauth, true);
  });

  test('derived keys come from the secret; jwt_secret falls back to it; explicit keys win', () => {
    const { config } = loadConfig(['--secret', 's3cret'], {});
    assert.deepEqual(config.jwtSecrets, ['s3cret']);
    assert.equal(config.broadcastKey, deriveKey('s3cret', 'broadcast-cable'));
    assert.equal(config.httpRpcSecret, deriveKey('s3cret', 'rpc-cable'));
    assert.equal(config.apiKey, deriveKey('s3cret', 'api-cable'));
    assert.equal(loadConfig(['--secret', 's', '--broadcast_key', 'none'], {}).config.broadcastKey, '');
    assert.equal(loadConfig(['--secret', 's', '--public'], {}).config.broadcastKey, '');
  });

  test('every problem is reported at once', () => {
    try {
      loadConfig(['--port', 'x', '--ping_interval', '-2', '--disconnect_mode', 'sometimes', '--nope', '--broadcast_adapter', 'http,kafka'], {});
      assert.fail('should throw');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.problems.length, 5);
    }
  });

  test('secure start: production refuses no secret and weak secrets; development generates one', () => {
    assert.equal(checkSecrets(loadConfig([], {}).config, true).kind, 'refuse');
    assert.equal(checkSecrets(loadConfig(['--secret', 'changeme'], {}).config, true).kind, 'refuse');
    assert.equal(checkSecrets(loadConfig(['--secret', 'a-long-random-secret-value'], {}).config, true).kind, 'ok');
    assert.equal(checkSecrets(loadConfig(['--public'], {}).config, true).kind, 'ok');
    const dev = checkSecrets(loadConfig([], {}).config, false);
    assert.equal(dev.kind, 'generated');
    if (dev.kind === 'generated') assert.equal(dev.config.jwtSecrets[0]?.length, 64);
  });
});

describe('keys', () => {
  test('derived key is lower-case hex HMAC-SHA256', () => {
    assert.match(deriveKey('secret', 'broadcast-cable'), /^[0-9a-f]{64}$/);
    assert.ok(safeEqual('abc', 'abc'));
    assert.ok(!safeEqual('abc', 'abd'));
    assert.ok(!safeEqual('abc', 'abcd'));
  });
});

describe('JWT verification', () => {
  const verifier = new JwtVerifier(['k1-0123456789abcdef', 'k2-0123456789abcdef']);
  test('valid with either secret; ext verbatim', async () => {
    for (const k of ['k1-0123456789abcdef', 'k2-0123456789abcdef']) {
      assert.deepEqual(await verifier.verify(await signToken(k, { ext: '{"id":1}' }, { expiresIn: 60 })), { ok: true, identifiers: '{"id":1}' });
    }
  });
  test('HS384 and HS512 are accepted', async () => {
    for (const alg of ['HS384', 'HS512']) {
      const verdict = await verifier.verify(await signToken('k1-0123456789abcdef', { ext: '"x"' }, { alg, expiresIn: 60 }));
      assert.equal(verdict.ok, true);
    }
  });
  test('expired, bad signature, missing ext', async () => {
    assert.deepEqual(await verifier.verify(await signToken('k1-0123456789abcdef', { ext: '1' }, { expiresIn: -1 })), { ok: false, reason: 'token_expired', detail: 'token expired' });
    assert.equal((await verifier.verify(await signToken('zz-0123456789abcdef', { ext: '1' }))) .ok, false);
    const missing = await verifier.verify(await signToken('k1-0123456789abcdef', {}));
    assert.equal(missing.ok === false && missing.reason, 'unauthorized');
  });
});

describe('client frame decoder', () => {
  test('valid commands', () => {
    assert.deepEqual(decodeClientFrame('{"command":"subscribe","identifier":"x"}'), { ok: true, value: { command: 'subscribe', identifier: 'x' } });
    assert.deepEqual(decodeClientFrame('{"command":"message","identifier":"x","data":"{}"}'), { ok: true, value: { command: 'message', identifier: 'x', data: '{}' } });
    assert.deepEqual(decodeClientFrame('{"command":"ping"}'), { ok: true, value: { command: 'ping' } });
  });
  test('errors are values with a kind', () => {
    const kinds = ['nope', '1', '{"command":"x"}', '{"command":"subscribe","identifier":""}', '{"command":"message","identifier":"x","data":1}']
      .map((f) => { const r = decodeClientFrame(f); return r.ok ? 'ok' : r.value.error; });
    assert.deepEqual(kinds, ['not_json', 'not_object', 'unknown_command', 'bad_identifier', 'bad_data']);
  });
  test('broadcast data is decoded once', () => {
    assert.equal(messageJsonFromData('{"a":1}'), '{"a":1}');
    assert.equal(messageJsonFromData('"s"'), '"s"');
    assert.equal(messageJsonFromData('<b>'), '"<b>"');
  });
});

describe('signed streams and broadcast payloads', () => {
  test('MessageVerifier round trip; tampering fails', () => {
    const signed = signStreamName('sec', 'chat:1');
    assert.equal(verifyStreamName('sec', signed), 'chat:1');
    assert.equal(verifyStreamName('other', signed), null);
    const lastDigit = signed.slice(-1);
    assert.equal(verifyStreamName('sec', signed.slice(0, -1) + (lastDigit === '0' ? '1' : '0')), null);
    assert.equal(verifyStreamName('sec', 'garbage'), null);
  });
  test('payload shapes', () => {
    assert.deepEqual(parsePublications({ stream: 's', data: '1', meta: { exclude_socket: 'sid' } }), { ok: true, items: [{ kind: 'broadcast', stream: 's', data: '1', excludeSocket: 'sid' }] });
    assert.deepEqual(parsePublications({ command: 'disconnect', payload: { identifier: 'i' } }), { ok: true, items: [{ kind: 'disconnect', identifier: 'i', reconnect: true }] });
    assert.equal(parsePublications([]).ok, false);
  });
});
