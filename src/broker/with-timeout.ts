/** `promise`, or a rejection naming `what` when it has not settled within `ms` (a broker that stopped answering). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what = 'broker call'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms);
    promise.then((v) => { clearTimeout(timer); resolve(v); }, (err: unknown) => { clearTimeout(timer); reject(err); });
  });
}
