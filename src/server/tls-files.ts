import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { ConfigError } from '../errors.js';

function readable(flag: string, path: string, problems: string[]): Buffer | null {
  try {
    return readFileSync(path);
  } catch (err) {
    problems.push(`${flag}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return null;
  }
}

/**
 * uWS only says "App construction failed" when a TLS file is missing or broken:
 * we read and parse both first so the error names the file and what is wrong with it.
 */
export function checkTlsFiles(certPath: string, keyPath: string): void {
  if (certPath === '' && keyPath === '') return;
  const problems: string[] = [];
  const cert = readable('--ssl_cert', certPath, problems);
  const key = readable('--ssl_key', keyPath, problems);
  if (cert) {
    try { new X509Certificate(cert); } catch { problems.push(`--ssl_cert: ${certPath} is not a PEM certificate`); }
  }
  if (key) {
    try { createPrivateKey(key); } catch { problems.push(`--ssl_key: ${keyPath} is not a PEM private key (or it is encrypted)`); }
  }
  if (problems.length > 0) throw new ConfigError(problems);
}
