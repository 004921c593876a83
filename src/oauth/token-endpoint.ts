import { ownLogLocation } from '../log-location.js';
import { UpstreamRejectedError, UpstreamUnavailableError } from '../errors.js';
import { UpstreamConnectError } from '../net/upstream-fetch.js';
import { Secret } from '../secret.js';
import type { ClientConfig } from './client-config.js';
import { defaultRetryPolicy, parseRetryAfter, RetryableError, withRetries, type RetryPolicy } from './retry.js';

/** What a successful token-endpoint answer gives tokend. Secrets stay wrapped. */
export interface TokenGrant {
  accessToken: Secret;
  expiresInSeconds: number;
  /** The `scope` field as the server sent it, if it did. */
  scope: string | undefined;
  refreshToken: Secret | undefined;
  idToken: Secret | undefined;
}

/**
 * The refresh token is dead (revoked, expired, or a session-control policy demands a new sign-in).
 * The broker turns this into ConsentRequiredError for the account; it is not shown to clients as is.
 */
export class GrantInvalidError extends Error {
  constructor(readonly subtype: string | undefined) {
    super(subtype === undefined ? 'invalid_grant' : `invalid_grant (${subtype})`);
    this.name = 'GrantInvalidError';
  }

  /** A human sentence: why the user must consent again. */
  get reason(): string {
    if (this.subtype === 'invalid_rapt' || this.subtype === 'rapt_required') {
      return 'a session-control policy requires you to sign in again';
    }
    return 'the refresh token has expired or was revoked';
  }
}

/** The calls the broker and the consent flow make upstream; TokenEndpoint is the real one. */
export interface OAuthEndpoint {
  refresh(client: ClientConfig, refreshToken: Secret, scopes: readonly string[], signal?: AbortSignal): Promise<TokenGrant>;
  exchangeCode(
    client: ClientConfig,
    params: { code: Secret; codeVerifier: Secret; redirectUri: string },
    signal?: AbortSignal,
  ): Promise<TokenGrant>;
  revoke(client: ClientConfig, token: Secret, signal?: AbortSignal): Promise<void>;
}

export interface TokenEndpointOptions {
  /** Each request. */
  timeoutMs?: number;
  /** All tries of one call together, backoff included. */
  totalTimeoutMs?: number;
  retry?: RetryPolicy;
  fetch?: typeof fetch;
}

const MAX_BODY = 64 * 1024;
const OAUTH_ERROR_CODE = /^[a-z0-9_]{1,64}$/;

function hostOf(uri: string): string {
  return new URL(uri).host;
}

/** Only a short, well-formed OAuth error code ever leaves this module; descriptions never do. */
function safeErrorCode(value: unknown): string {
  return typeof value === 'string' && OAUTH_ERROR_CODE.test(value) ? value : 'unknown_error';
}

const MALFORMED_ANSWER_HINT = 'check that the client file\'s token_uri is Google\'s (https://oauth2.googleapis.com/token)';
/**
 * Google's access tokens last an hour (service-account tokens 12 h at most). A longer claim is not
 * believed: the token is refreshed as if it lasted this long, which costs one grant and is never wrong.
 */
const MAX_ACCESS_TOKEN_SECONDS = 12 * 3600;

function parseGrant(body: Record<string, unknown>, host: string): TokenGrant {
  const { access_token, expires_in, scope, refresh_token, id_token } = body;
  // A number, or a decimal string ("3599"); never "0x10", "1e3" or padding.
  const expiresIn = Math.floor(typeof expires_in === 'number' ? expires_in : typeof expires_in === 'string' && /^\d+(\.\d+)?$/.test(expires_in) ? Number(expires_in) : NaN);
  if (typeof access_token !== 'string' || access_token.length === 0 || access_token.length > 8192) {
    throw new UpstreamRejectedError(`the OAuth server at ${host} answered without a usable access_token`, { hint: MALFORMED_ANSWER_HINT });
  }
  // Below a second (0.4 included) the token is dead on arrival.
  if (!Number.isFinite(expiresIn) || expiresIn < 1) {
    throw new UpstreamRejectedError(`the OAuth server at ${host} answered without a usable expires_in`, { hint: MALFORMED_ANSWER_HINT });
  }
  return {
    accessToken: new Secret(access_token),
    expiresInSeconds: Math.min(expiresIn, MAX_ACCESS_TOKEN_SECONDS),
    scope: typeof scope === 'string' ? scope : undefined,
    refreshToken: typeof refresh_token === 'string' && refresh_token !== '' ? new Secret(refresh_token) : undefined,
    idToken: typeof id_token === 'string' && id_token !== '' ? new Secret(id_token) : undefined,
  };
}

/**
 * Talks to the client's token and revocation endpoints directly (google-auth-library does not send
 * `scope=` on refresh, and its revokeToken() sends no client authentication). Every request is
 * time-bounded; 5xx, 429, timeouts and resets are retried with jittered backoff; other failures are
 * reduced to their OAuth error code, so no upstream text reaches clients or logs.
 */
export class TokenEndpoint implements OAuthEndpoint {
  private readonly timeoutMs: number;
  private readonly totalTimeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly fetchImpl: typeof fetch;

  constructor(options: TokenEndpointOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.totalTimeoutMs = options.totalTimeoutMs ?? 20_000;
    this.retry = options.retry ?? defaultRetryPolicy;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** `grant_type=refresh_token` narrowed to `scopes` (RFC 6749 §6). */
  refresh(client: ClientConfig, refreshToken: Secret, scopes: readonly string[], signal?: AbortSignal) {
    return this.grant(
      client,
      { grant_type: 'refresh_token', refresh_token: refreshToken.reveal(), scope: scopes.join(' ') },
      signal,
    );
  }

  /** Not retried: a code is single-use, and a second try after a lost answer revokes the grant. */
  exchangeCode(
    client: ClientConfig,
    params: { code: Secret; codeVerifier: Secret; redirectUri: string },
    signal?: AbortSignal,
  ) {
    return this.grant(
      client,
      {
        grant_type: 'authorization_code',
        code: params.code.reveal(),
        code_verifier: params.codeVerifier.reveal(),
        redirect_uri: params.redirectUri,
      },
      signal,
      { ...this.retry, attempts: 1 },
    );
  }

  /** Revokes the grant behind `token` (Google revokes every token of the grant). */
  async revoke(client: ClientConfig, token: Secret, signal?: AbortSignal): Promise<void> {
    const host = hostOf(client.revokeUri);
    await withRetries(
      this.retry,
      async () => {
        const response = await this.post(client.revokeUri, client, { token: token.reveal() }, signal);
        const body = response.body;
        if (response.ok) return;
        // Revoking an already-dead token is the outcome we wanted.
        if (response.status === 400 && safeErrorCode(body.error) === 'invalid_token') return;
        throw this.failure(response, host);
      },
      signal,
    );
  }

  private async grant(client: ClientConfig, params: Record<string, string>, signal?: AbortSignal, retry = this.retry) {
    const host = hostOf(client.tokenUri);
    const deadline = AbortSignal.timeout(this.totalTimeoutMs);
    const bounded = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
    try {
      return await withRetries(
        retry,
        async () => {
          const response = await this.post(client.tokenUri, client, params, bounded);
          if (!response.ok) throw this.failure(response, host);
          return parseGrant(response.body, host);
        },
        bounded,
      );
    } catch (error) {
      if (deadline.aborted && !(signal?.aborted ?? false)) {
        throw new RetryableError(`the OAuth server at ${host} did not answer within ${this.totalTimeoutMs} ms in all`, { cause: error });
      }
      throw error;
    }
  }

  private failure(response: { status: number; body: Record<string, unknown>; retryAfter: string | null }, host: string): Error {
    const { status, body } = response;
    if (status >= 500 || status === 429 || status === 408) {
      const retryAfterMs = parseRetryAfter(response.retryAfter);
      return new RetryableError(`the OAuth server at ${host} answered HTTP ${status}`, retryAfterMs === undefined ? {} : { retryAfterMs });
    }
    const code = safeErrorCode(body.error);
    if (code === 'invalid_grant') {
      const subtype = body.error_subtype;
      return new GrantInvalidError(typeof subtype === 'string' ? safeErrorCode(subtype) : undefined);
    }
    if (code === 'invalid_client' || code === 'unauthorized_client') {
      return new UpstreamRejectedError(`the OAuth server at ${host} rejected the client (${code})`, {
        hint: 'check the client file; if the client was deleted, create a new Desktop app client and run `tokend login` again',
        details: { oauthError: code },
      });
    }
    return new UpstreamRejectedError(`the OAuth server at ${host} refused the request (HTTP ${status}, ${code})`, {
      hint:
        code === 'invalid_scope'
          ? 'the grant no longer covers these scopes; run `tokend login` again with the scopes you need'
          : `check that the client file's token_uri (${host}) is the OAuth server you meant; ${ownLogLocation()} has the details`,
      details: { oauthError: code },
    });
  }

  private async post(
    uri: string,
    client: ClientConfig,
    params: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<{ ok: boolean; status: number; body: Record<string, unknown>; retryAfter: string | null }> {
    const body = new URLSearchParams({
      ...params,
      client_id: client.clientId,
      client_secret: client.clientSecret.reveal(),
    });
    const timeout = AbortSignal.timeout(this.timeoutMs);
    try {
      const response = await this.fetchImpl(uri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
        redirect: 'error',
        signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      });
      return {
        ok: response.ok,
        status: response.status,
        body: parseJsonObject(await response.text()),
        retryAfter: response.headers.get('retry-after'),
      };
    } catch (error) {
      if (signal?.aborted) throw error;
      const host = hostOf(uri);
      const connect = error instanceof UpstreamConnectError ? error : undefined;
      const what = timeout.aborted ? `did not answer within ${this.timeoutMs} ms` : `could not be reached${connect?.route ?? ''}`;
      // The cause is kept for debugging but never logged: serializeError drops non-tokend messages.
      throw new RetryableError(`the OAuth server at ${host} ${what}`, { cause: error, ...(connect === undefined ? {} : { hint: connect.hint(host) }) });
    }
  }
}

function parseJsonObject(text: string): Record<string, unknown> {
  try {
    if (text.length > MAX_BODY) return {};
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Maps what is left after retries into the catalogue: RetryableError → UpstreamUnavailableError. */
export function toUpstreamError(error: unknown, consequence = 'tokens cannot be refreshed right now'): unknown {
  if (error instanceof RetryableError) {
    return new UpstreamUnavailableError(`${error.reason}; ${consequence}`, {
      hint: error.hint ?? 'check your network connection; `tokend status` shows the account health',
    });
  }
  return error;
}
