import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { isTokendError } from './errors.js';
import type { LogFormat } from './log-format.js';
import { prettyDestination } from './log-pretty.js';

export type { Logger } from 'pino';

/**
 * Field names that may hold a secret somewhere in an object passed to the logger. Code never logs
 * these on purpose (it logs the allowed fields below); this is the second layer.
 */
export const SECRET_KEYS = [
  'access_token',
  'accessToken',
  'refresh_token',
  'refreshToken',
  'id_token',
  'idToken',
  'authorization_code',
  'authorizationCode',
  'code_verifier',
  'codeVerifier',
  'client_secret',
  'clientSecret',
  'password',
  'passphrase',
  'token',
  'authorization',
  'Authorization',
  'cookie',
];

const redactPaths = SECRET_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]);

/**
 * Errors are logged as class name, code and message only: tokend's own messages are written to be
 * safe, and anything else (a GaxiosError, say) may carry a response body or request config, so its
 * message is dropped too.
 */
export function serializeError(err: unknown): Record<string, unknown> {
  if (isTokendError(err)) {
    return { type: err.name, code: err.code, message: err.message };
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { type: err.name, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { type: typeof err };
}

export interface LogOptions {
  level?: string;
  /** `json` (default: one object per line, what journald and log shippers want) or `pretty` for people. */
  format?: LogFormat;
  destination?: DestinationStream;
}

export function createLogger(options: LogOptions = {}): Logger {
  const config: LoggerOptions = {
    level: options.level ?? 'info',
    base: { name: 'tokend', pid: process.pid },
    redact: { paths: redactPaths, censor: '[Redacted]' },
    serializers: { err: serializeError, error: serializeError },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return pino(config, options.destination ?? (options.format === 'pretty' ? prettyDestination(2) : pino.destination({ fd: 2, sync: true })));
}

/** A logger that drops everything, for unit tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Counts occurrences by kind and says which deserve a log line: the first of each kind, then one per
 * power of ten (10th, 100th, ...), so that a flood of refusals cannot flood the log.
 */
export function floodLimitedCounter(): (kind: string) => { count: number; log: boolean } {
  const counts = new Map<string, number>();
  return (kind) => {
    const count = (counts.get(kind) ?? 0) + 1;
    counts.set(kind, count);
    return { count, log: Number.isInteger(Math.log10(count)) };
  };
}
