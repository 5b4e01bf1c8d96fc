import { maskUrlsIn } from './logging/mask.js';

/** Base error with a stable code; callers test `code`, never the message. */
export class CablecatError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Every configuration problem at once, so the user fixes them in one go. */
export class ConfigError extends CablecatError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('CABLECAT_ERR_CONFIG', `invalid configuration:\n${problems.map((p) => `  - ${maskUrlsIn(p)}`).join('\n')}`);
    this.problems = problems;
  }
}

export class RpcError extends CablecatError {
  /** gRPC status code (or the HTTP RPC equivalent). */
  readonly grpcCode: number;
  constructor(grpcCode: number, message: string, options?: { cause?: unknown }) {
    super('CABLECAT_ERR_RPC', message, options);
    this.grpcCode = grpcCode;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
