import { AuthClient } from 'google-auth-library';
import type { Clock } from '../clock.js';
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

/**
 * The wall clock, as google-auth-library's own credentials use it for expiry: it counts a suspend,
 * and one call costs half of the daemon's steady time. A clock set back makes a token look younger;
 * the 401 it then meets is retried with a new token (request() below).
 */
const wallClock: Pick<Clock, 'now'> = { now: () => Date.now() };

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
  private cached: { token: TokenResponse; expiresAt: number; answer: Promise<AccessToken> } | undefined;
  private inFlight: Promise<TokenResponse> | undefined;

  constructor(options: TokendAuthClientOptions = {}) {
    super();
    this.tokend = options.client ?? new TokendClient(options.socketPath === undefined ? {} : { socketPath: options.socketPath });
    this.clock = options.clock ?? wallClock;
    const scopes = Array.isArray(options.scopes) ? options.scopes.join(',') : options.scopes;
    this.ask = { ...(scopes === undefined ? {} : { scopes }), ...(options.account === undefined ? {} : { account: options.account }) };
  }

  // Not async: a cached token is handed back without the two extra promise turns an async method takes.
  getAccessToken(): Promise<AccessToken> {
    // One settled promise per token, handed to every caller: a cache hit allocates nothing.
    if (this.reusable() !== undefined) return this.cached!.answer;
    return this.token().then((token) => ({ token: token.access_token }));
  }

  async getRequestHeaders(): Promise<Headers> {
    const token = this.reusable() ?? (await this.token());
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

  /** The cached token while it has more than 300 s left. */
  private reusable(): TokenResponse | undefined {
    return this.cached !== undefined && this.cached.expiresAt - this.clock.now() > REUSE_UNTIL_SECONDS_LEFT * 1000 ? this.cached.token : undefined;
  }

  private async token(): Promise<TokenResponse> {
    const cached = this.reusable();
    if (cached !== undefined) return cached;
    const now = this.clock.now();
    this.inFlight ??= this.tokend.getToken(this.ask).then(
      (token) => {
        this.cached = { token, expiresAt: now + token.expires_in * 1000, answer: Promise.resolve({ token: token.access_token }) };
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
