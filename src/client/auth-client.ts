import { AuthClient } from 'google-auth-library';
import { systemClock, type Clock } from '../clock.js';
import { TokendClient } from './socket-client.js';
import type { TokenResponse } from '../protocol.js';

export interface TokendAuthClientOptions {
  /** Short names (`bigquery`) or full URLs; default: every API scope the account granted. */
  scopes?: string | string[];
  /** An account's email; default: the default account. */
  account?: string;
  /** Default: as for `new TokendClient()`. */
  socketPath?: string;
  /** For tests: the socket client, and the clock that decides when a cached token is too old. */
  client?: Pick<TokendClient, 'getToken'>;
  clock?: Pick<Clock, 'now'>;
}

// gaxios's own types are not imported: its ESM and CJS builds declare distinct types, and these
// must be the ones google-auth-library uses.
type RequestOptions = Parameters<AuthClient['request']>[0];
declare const _transporter: AuthClient['transporter'];
type Response<T> = ReturnType<typeof _transporter.request<T>>;
type AccessToken = Awaited<ReturnType<AuthClient['getAccessToken']>>;

/** Google's libraries treat a token with 300 s or less left as expired; so does this client. */
const REUSE_UNTIL_SECONDS_LEFT = 300;

/**
 * A google-auth-library AuthClient whose tokens come from the tokend daemon, for every Google Cloud
 * Node client: `new BigQuery({ projectId, authClient: new TokendAuthClient({ scopes: ['bigquery'] }) })`.
 * A token is reused until 300 s before it expires; concurrent calls share one request to the
 * daemon; the daemon's errors arrive as tokend's error classes, with their code and hint.
 */
export class TokendAuthClient extends AuthClient {
  private readonly tokend: Pick<TokendClient, 'getToken'>;
  private readonly clock: Pick<Clock, 'now'>;
  private readonly ask: { scopes?: string; account?: string };
  private cached: { token: TokenResponse; expiresAt: number } | undefined;
  private inFlight: Promise<TokenResponse> | undefined;

  constructor(options: TokendAuthClientOptions = {}) {
    super();
    this.tokend = options.client ?? new TokendClient(options.socketPath === undefined ? {} : { socketPath: options.socketPath });
    this.clock = options.clock ?? systemClock;
    const scopes = Array.isArray(options.scopes) ? options.scopes.join(',') : options.scopes;
    this.ask = { ...(scopes === undefined ? {} : { scopes }), ...(options.account === undefined ? {} : { account: options.account }) };
  }

  async getAccessToken(): Promise<AccessToken> {
    return { token: (await this.token()).access_token };
  }

  async getRequestHeaders(): Promise<Headers> {
    const token = await this.token();
    return this.addSharedMetadataHeaders(new Headers({ authorization: `Bearer ${token.access_token}` }));
  }

  /** The request with the token; a 401 (the token was revoked meanwhile) is retried once with a new one. */
  async request<T>(options: RequestOptions): Response<T> {
    const send = async () => {
      const headers = new Headers(options.headers);
      for (const [name, value] of await this.getRequestHeaders()) headers.set(name, value);
      return this.transporter.request<T>({ ...options, headers });
    };
    try {
      return await send();
    } catch (error) {
      if ((error as { status?: number; response?: { status?: number } }).response?.status !== 401) throw error;
      this.cached = undefined;
      return send();
    }
  }

  /** The account's email, as the daemon reports it with each token. */
  async getAccount(): Promise<string> {
    return (await this.token()).account;
  }

  private async token(): Promise<TokenResponse> {
    const now = this.clock.now();
    if (this.cached !== undefined && this.cached.expiresAt - now > REUSE_UNTIL_SECONDS_LEFT * 1000) return this.cached.token;
    this.inFlight ??= this.tokend.getToken(this.ask).then(
      (token) => {
        this.cached = { token, expiresAt: now + token.expires_in * 1000 };
        this.credentials = { access_token: token.access_token, expiry_date: this.cached.expiresAt, token_type: 'Bearer' };
        this.inFlight = undefined;
        return token;
      },
      (error: unknown) => {
        this.inFlight = undefined;
        throw error;
      },
    );
    return this.inFlight;
  }
}
