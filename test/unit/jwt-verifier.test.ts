// The node:crypto JWT verifier against tokens jose signs: every verdict, and agreement with jose's jwtVerify.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createSecretKey, generateKeyPairSync } from 'node:crypto';
import { SignJWT, UnsecuredJWT, jwtVerify, type JWTPayload } from 'jose';
import fc from 'fast-check';
import { JwtVerifier, MAX_TOKEN_LENGTH } from '../../src/auth/jwt.js';
import { b64url } from '../helpers/tokens.js';

const K1 = 'k1-0123456789abcdef';
const K2 = 'k2-0123456789abcdef';
const now = (): number => Math.floor(Date.now() / 1000);
const key = (secret: string) => createSecretKey(Buffer.from(secret, 'utf8'));

function sign(secret: string, claims: JWTPayload, alg = 'HS256', header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ ...header, alg }).sign(key(secret));
}

/** Replaces the character at `index` by another base64url character. */
function flip(token: string, index: number): string {
  const c = token[index] === 'A' ? 'B' : 'A';
  return token.slice(0, index) + c + token.slice(index + 1);
}

describe('JWT verifier (node:crypto HMAC) against jose-signed tokens', () => {
  const verifier = new JwtVerifier([K1, K2]);

  test('valid HS256, HS384 and HS512 tokens give the ext claim verbatim', async () => {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const token = await sign(K1, { ext: '{"user_id":42}', exp: now() + 60, iat: now(), nbf: now() }, alg);
      assert.deepEqual(verifier.verify(token), { ok: true, identifiers: '{"user_id":42}' }, alg);
    }
  });

  test('secrets shorter than, equal to and longer than the digest block (RFC 2104 key hashing) verify jose tokens', async () => {
    for (const length of [1, 32, 64, 65, 128, 129, 300]) {
      const secret = 's'.repeat(length - 1) + 'é'; // a multi-byte character: keys are UTF-8 bytes
      const single = new JwtVerifier([secret]);
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        assert.deepEqual(single.verify(await sign(secret, { ext: `${alg}/${length}` }, alg)), { ok: true, identifiers: `${alg}/${length}` }, `${alg} key ${length}`);
      }
    }
  });

  test('secret rotation: a token of either secret verifies, a third secret does not', async () => {
    assert.deepEqual(verifier.verify(await sign(K1, { ext: 'a' })), { ok: true, identifiers: 'a' });
    assert.deepEqual(verifier.verify(await sign(K2, { ext: 'b' })), { ok: true, identifiers: 'b' });
    assert.deepEqual(verifier.verify(await sign('k3-0123456789abcdef', { ext: 'c' })), { ok: false, reason: 'unauthorized', detail: 'bad signature' });
    assert.deepEqual(new JwtVerifier([K2]).verify(await sign(K1, { ext: 'a' })), { ok: false, reason: 'unauthorized', detail: 'bad signature' });
  });

  test('expired: exp at or before now is token_expired; an expired token with a bad signature is just unauthorized', async () => {
    for (const exp of [now() - 100, now()]) {
      assert.deepEqual(verifier.verify(await sign(K1, { ext: '1', exp })), { ok: false, reason: 'token_expired', detail: 'token expired' });
    }
    assert.deepEqual(verifier.verify(await sign('zz-0123456789abcdef', { ext: '1', exp: now() - 100 })), { ok: false, reason: 'unauthorized', detail: 'bad signature' });
    assert.deepEqual(verifier.verify(await sign(K1, { ext: '1', exp: '2099-01-01' as unknown as number })), { ok: false, reason: 'unauthorized', detail: 'claim exp invalid' });
  });

  test('nbf in the future is refused; now or in the past is accepted', async () => {
    assert.deepEqual(verifier.verify(await sign(K1, { ext: '1', nbf: now() + 60 })), { ok: false, reason: 'unauthorized', detail: 'claim nbf invalid' });
    assert.equal(verifier.verify(await sign(K1, { ext: '1', nbf: now() })).ok, true);
    assert.equal(verifier.verify(await sign(K1, { ext: '1', nbf: now() - 60 })).ok, true);
    assert.deepEqual(verifier.verify(await sign(K1, { ext: '1', iat: 'yesterday' as unknown as number })), { ok: false, reason: 'unauthorized', detail: 'claim iat invalid' });
  });

  test('wrong algorithms are refused before any signature check: none, RS256, HS256 header re-labelled', async () => {
    const unsecured = new UnsecuredJWT({ ext: '1' }).encode();
    assert.deepEqual(verifier.verify(unsecured), { ok: false, reason: 'unauthorized', detail: 'algorithm not allowed' });
    const noneWithSig = `${unsecured}c2ln`;
    assert.deepEqual(verifier.verify(noneWithSig), { ok: false, reason: 'unauthorized', detail: 'algorithm not allowed' });
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rs256 = await new SignJWT({ ext: '1' }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
    assert.deepEqual(verifier.verify(rs256), { ok: false, reason: 'unauthorized', detail: 'algorithm not allowed' });
    // An HS256 token whose header claims HS512: the MAC no longer matches.
    const hs256 = await sign(K1, { ext: '1' });
    const relabelled = [b64url({ alg: 'HS512' }), ...hs256.split('.').slice(1)].join('.');
    assert.deepEqual(verifier.verify(relabelled), { ok: false, reason: 'unauthorized', detail: 'bad signature' });
  });

  test('tampered tokens: any changed character of header, payload or signature fails', async () => {
    const token = await sign(K1, { ext: '{"user_id":1}', exp: now() + 60 });
    const [h = '', p = ''] = token.split('.');
    for (const index of [1, h.length + 5, h.length + 1 + p.length - 2, token.length - 3, token.length - 1]) {
      const verdict = verifier.verify(flip(token, index));
      assert.equal(verdict.ok, false, `index ${index}`);
    }
    // A payload swapped for another user's, keeping the signature.
    const forged = [h, b64url({ ext: '{"user_id":2}', exp: now() + 60 }), token.split('.')[2]].join('.');
    assert.deepEqual(verifier.verify(forged), { ok: false, reason: 'unauthorized', detail: 'bad signature' });
    // The same MAC in a non-canonical encoding (unused low bits of the last character set): jose's decoder
    // ignores those bits and accepts it; this verifier compares the canonical text and refuses it.
    const last = token[token.length - 1] ?? 'A';
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sloppy = token.slice(0, -1) + alphabet[alphabet.indexOf(last) | 1];
    assert.notEqual(sloppy, token, 'HS256 signatures leave unused bits in the last character');
    assert.deepEqual(verifier.verify(sloppy), { ok: false, reason: 'unauthorized', detail: 'bad signature' });
    // Extra characters or padding after the signature.
    assert.deepEqual(verifier.verify(`${token}A`), { ok: false, reason: 'unauthorized', detail: 'bad signature' });
    assert.deepEqual(verifier.verify(`${token}=`), { ok: false, reason: 'unauthorized', detail: 'malformed token' });
  });

  test('short and long tokens in turn (the MAC input buffer grows and is reused) verify, and a changed MAC does not', async () => {
    const single = new JwtVerifier([K1]);
    for (const size of [10, 2000, 5, 6000, 100]) {
      for (const alg of ['HS256', 'HS512']) {
        const token = await sign(K1, { ext: 'x'.repeat(size) }, alg);
        assert.deepEqual(single.verify(token), { ok: true, identifiers: 'x'.repeat(size) }, `${alg} ${size}`);
        assert.deepEqual(single.verify(flip(token, token.length - 2)), { ok: false, reason: 'unauthorized', detail: 'bad signature' }, `${alg} ${size} flipped`);
      }
    }
  });

  test('malformed input: segments, JSON, types, crit, length', async () => {
    for (const bad of ['', 'not-a-jwt', 'a.b', 'a.b.c.d', '.x.y', `${b64url([1])}.${b64url({ ext: '1' })}.sig`, `${b64url({})}.${b64url({ ext: '1' })}.sig`, `${b64url({ alg: 'HS256', crit: ['b64'], b64: true })}.${b64url({ ext: '1' })}.sig`, 'e30.e30.%%%']) {
      assert.deepEqual(verifier.verify(bad), { ok: false, reason: 'unauthorized', detail: 'malformed token' }, bad);
    }
    const arrayPayload = `${b64url({ alg: 'HS256' })}.${b64url(['ext'])}`;
    const signed = await sign(K1, { ext: '1' });
    assert.equal(verifier.verify(`${arrayPayload}.${signed.split('.')[2]}`).ok, false);
    assert.deepEqual(verifier.verify(await sign(K1, { sub: '1' })), { ok: false, reason: 'unauthorized', detail: 'ext claim missing or not a string' });
    assert.deepEqual(verifier.verify(await sign(K1, { ext: { user_id: 1 } })), { ok: false, reason: 'unauthorized', detail: 'ext claim missing or not a string' });
    assert.deepEqual(verifier.verify('a'.repeat(MAX_TOKEN_LENGTH + 1)), { ok: false, reason: 'unauthorized', detail: 'token too long' });
  });

  test('agrees with jose jwtVerify on random claims, algorithms, secrets and tampering (seeded)', async () => {
    const awayFromNow = fc.integer({ min: -100, max: 100 }).filter((offset) => Math.abs(offset) >= 3);
    await fc.assert(fc.asyncProperty(
      fc.constantFrom('HS256', 'HS384', 'HS512'),
      fc.constantFrom(K1, K2, 'k3-0123456789abcdef'),
      // Offsets at least 3 s from now: jose and this verifier read the clock at different moments.
      fc.record({ ext: fc.option(fc.string(), { nil: undefined }), exp: fc.option(awayFromNow, { nil: undefined }), nbf: fc.option(awayFromNow, { nil: undefined }) }),
      fc.option(fc.nat(), { nil: undefined }),
      async (alg, secret, claims, tamperAt) => {
        const payload: JWTPayload = {};
        if (claims.ext !== undefined) payload.ext = claims.ext;
        if (claims.exp !== undefined) payload.exp = now() + claims.exp;
        if (claims.nbf !== undefined) payload.nbf = now() + claims.nbf;
        let token = await sign(secret, payload, alg);
        if (tamperAt !== undefined) {
          // Not the last character: its unused low bits are ignored by jose's decoder (see the canonical test).
          const index = tamperAt % (token.length - 1);
          if (token[index] !== '.') token = flip(token, index);
        }
        let joseOk = false;
        let joseExt: unknown;
        for (const k of [K1, K2]) {
          try {
            joseExt = (await jwtVerify(token, key(k), { algorithms: ['HS256', 'HS384', 'HS512'] })).payload.ext;
            joseOk = true;
            break;
          } catch { /* next key */ }
        }
        const ours = verifier.verify(token);
        const expected = joseOk && typeof joseExt === 'string';
        assert.equal(ours.ok, expected, `token ${token}`);
        if (ours.ok) assert.equal(ours.identifiers, joseExt);
      },
    ), { seed: 15, numRuns: 300 });
  });
});
