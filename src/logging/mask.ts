/**
 * Credentials hide inside URLs (`redis://:pw@host`, `nats://user:pw@host`, `nats://token@host`,
 * `?password=`): these helpers mask them wherever a URL may be printed (config print, logs, errors).
 */
const MASK = '******';
/** scheme://userinfo@ — userinfo stops at the first '/', '?', '#', '@' or whitespace. */
const USERINFO = /([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@]+)@/gi;
const SECRET_PARAM = /([?&](?:password|pass|passwd|token|secret|auth_token)=)[^&#\s]*/gi;

/** The whole userinfo is masked: `user:pw@`, a lone NATS token or a redis password alike. */
export function maskUrlsIn(text: string): string {
  if (!text.includes('://') && !text.includes('=')) return text;
  return text
    .replace(USERINFO, `$1${MASK}@`)
    .replace(SECRET_PARAM, `$1${MASK}`);
}

/** Masks strings in a value one level deep (log fields, config entries, lists of URLs). */
export function maskValue<T>(value: T): T {
  if (typeof value === 'string') return maskUrlsIn(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => (typeof v === 'string' ? maskUrlsIn(v) : v)) as T;
  return value;
}

/** A shallow copy of log fields with URL credentials masked in string (and string-list) values. */
export function maskFields(fields: object): object {
  let copy: Record<string, unknown> | null = null;
  for (const [key, val] of Object.entries(fields)) {
    // An Error stays an Error (pino serializes its stack) unless its message carries a credential.
    const masked: unknown = val instanceof Error ? maskedError(val) : maskValue(val);
    if (masked !== val) (copy ??= { ...fields } as Record<string, unknown>)[key] = masked;
  }
  return copy ?? fields;
}

function maskedError(err: Error): Error | string {
  const message = maskUrlsIn(err.message);
  return message === err.message ? err : message;
}
