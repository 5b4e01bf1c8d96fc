import { sleep } from './http.js';

/**
 * Polls `check` every 25 ms until it holds, or throws once `timeoutMs` has passed. For conditions
 * with no event of their own to await (a gauge, a counter, a broker's readiness, a Redis NUMSUB).
 */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(25);
  }
}
