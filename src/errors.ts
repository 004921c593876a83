import { daemonLogLocation } from './log-location.js';

/**
 * The one error catalogue. Every failure tokend reports to a person or a client is one of these
 * classes: a stable `code`, the HTTP status the daemon answers with, the CLI exit code, a message that
 * says what failed and why, and a hint with the command that fixes it. docs/errors.md lists every code;
 * test/unit/errors-doc.test.ts keeps the two in step.
 *
 * Messages and hints are written for humans and never carry secrets: no token, code, verifier or
 * client secret is ever interpolated into them, and upstream error text is reduced to its OAuth error
 * code before it gets here.
 */

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  daemonUnreachable: 3,
  notLoggedIn: 4,
  consentRequired: 5,
  scopeNotGranted: 6,
  upstream: 7,
  store: 8,
  config: 9,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface TokendErrorOptions {
  hint: string;
  cause?: unknown;
  details?: Record<string, unknown>;
}

export abstract class TokendError extends Error {
  abstract readonly code: string;
  abstract readonly httpStatus: number;
  abstract readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  /** Machine-readable, non-secret facts (missing scopes, account email) for JSON bodies. */
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: TokendErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
    this.details = options.details;
  }

  /** What a client may see: never a stack, never a cause. */
  toJSON(): { code: string; message: string; hint?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

function define(code: string, httpStatus: number, exitCode: ExitCode) {
  return class extends TokendError {
    static readonly code = code;
    readonly code = code;
    readonly httpStatus = httpStatus;
    readonly exitCode = exitCode;
  };
}

// Requests
export class BadRequestError extends define('bad_request', 400, ExitCode.usage) {}
export class InvalidScopeError extends define('invalid_scope', 400, ExitCode.usage) {}
export class MissingMetadataFlavorError extends define('missing_metadata_flavor', 403, ExitCode.failure) {}
export class ProxiedRequestError extends define('proxied_request', 403, ExitCode.failure) {}
export class RequestRefusedError extends define('request_refused', 403, ExitCode.failure) {}
export class NotFoundError extends define('not_found', 404, ExitCode.failure) {}

// Accounts and scopes
export class NotLoggedInError extends define('not_logged_in', 404, ExitCode.notLoggedIn) {}
export class AccountNotFoundError extends define('account_not_found', 404, ExitCode.notLoggedIn) {}
export class ScopeNotGrantedError extends define('scope_not_granted', 403, ExitCode.scopeNotGranted) {}
export class ConsentRequiredError extends define('consent_required', 403, ExitCode.consentRequired) {}

// Upstream (the OAuth server)
export class UpstreamUnavailableError extends define('upstream_unavailable', 503, ExitCode.upstream) {}
export class UpstreamRejectedError extends define('upstream_rejected', 502, ExitCode.upstream) {}
export class UpstreamThrottledError extends define('upstream_throttled', 429, ExitCode.upstream) {}

// Consent flow
export class InvalidClientSecretsError extends define('invalid_client_secrets', 400, ExitCode.usage) {}
export class LoginFailedError extends define('login_failed', 400, ExitCode.failure) {}
export class LoginTimeoutError extends define('login_timeout', 408, ExitCode.failure) {}
export class LoginNotFoundError extends define('login_not_found', 404, ExitCode.failure) {}

// Secret store
export class StoreUnavailableError extends define('store_unavailable', 503, ExitCode.store) {}
export class StoreTimeoutError extends define('store_timeout', 503, ExitCode.store) {}
export class StoreCorruptError extends define('store_corrupt', 500, ExitCode.store) {}
export class StoreMismatchError extends define('store_mismatch', 500, ExitCode.store) {}

// Daemon, socket and configuration (mostly seen by the CLI)
export class DaemonUnreachableError extends define('daemon_unreachable', 503, ExitCode.daemonUnreachable) {}
export class SocketInUseError extends define('socket_in_use', 500, ExitCode.failure) {}
export class ServiceManagerError extends define('service_manager_failed', 500, ExitCode.failure) {}
export class UnsafePathError extends define('unsafe_path', 500, ExitCode.config) {}
export class ConfigError extends define('config_invalid', 500, ExitCode.config) {}
export class UsageError extends define('usage', 400, ExitCode.usage) {}
export class InternalError extends define('internal', 500, ExitCode.failure) {}

export const errorClasses = [
  BadRequestError,
  InvalidScopeError,
  MissingMetadataFlavorError,
  ProxiedRequestError,
  RequestRefusedError,
  NotFoundError,
  NotLoggedInError,
  AccountNotFoundError,
  ScopeNotGrantedError,
  ConsentRequiredError,
  UpstreamUnavailableError,
  UpstreamRejectedError,
  UpstreamThrottledError,
  InvalidClientSecretsError,
  LoginFailedError,
  LoginTimeoutError,
  LoginNotFoundError,
  StoreUnavailableError,
  StoreTimeoutError,
  StoreCorruptError,
  StoreMismatchError,
  DaemonUnreachableError,
  SocketInUseError,
  ServiceManagerError,
  UnsafePathError,
  ConfigError,
  UsageError,
  InternalError,
] as const;

export function isTokendError(value: unknown): value is TokendError {
  return value instanceof TokendError;
}

const DAEMON_LOG_HINT = `${daemonLogLocation()} says more`;

/** Rebuilds an error the daemon sent as JSON, as the same class, so the CLI maps it like a local one. */
export function errorFromJson(body: unknown, httpStatus: number): TokendError {
  const error = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  if (typeof error !== 'object' || error === null) {
    return new InternalError(`the daemon answered HTTP ${httpStatus} without an error description`, { hint: DAEMON_LOG_HINT });
  }
  const { code, message, hint, details } = error as Record<string, unknown>;
  const Cls = errorClasses.find((candidate) => candidate.code === code) ?? InternalError;
  return new Cls(typeof message === 'string' ? message : `the daemon answered HTTP ${httpStatus}`, {
    hint: typeof hint === 'string' ? hint : DAEMON_LOG_HINT,
    ...(typeof details === 'object' && details !== null ? { details: details as Record<string, unknown> } : {}),
  });
}
