import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Clock, TimerHandle } from '../clock.js';
import type { Logger } from '../log.js';
import { answerClientError, refuseConnect, refuseExpectation } from '../net/client-errors.js';
import { acceptOwnerOnly, createConnectionBudget, type ConnectionBudget, type OwnerOnlyGuard } from '../net/owner-only.js';
import type { TokendError } from '../errors.js';
import { isTokendError, LoginFailedError, LoginTimeoutError } from '../errors.js';
import { Secret } from '../secret.js';
import type { ClientConfig } from './client-config.js';
import { emailFromIdToken } from './id-token.js';
import { renderResultPage, type ResultPage } from './result-page.js';
import { toUpstreamError, type OAuthEndpoint, type TokenGrant } from './token-endpoint.js';

export const CALLBACK_PATH = '/oauth2callback';
const LOOPBACK_HOST = '127.0.0.1';
/** After a timeout the listener keeps answering with the timeout page this long, then closes. */
const LATE_ANSWER_GRACE_MS = 60_000;
/** A browser opens a handful of connections; nothing else has a reason to connect. */
const MAX_CONNECTIONS = 8;
/** How long an answer being written may take once the sign-in has ended; then every connection is cut. */
const CLOSE_GRACE_MS = 1_000;

/** What the code exchange produced, handed to the broker to store. */
export interface ConsentGrant {
  email: string;
  grant: TokenGrant & { refreshToken: Secret };
}

export interface ConsentOptions<T> {
  client: ClientConfig;
  /** Full scope strings to ask for; `openid` and `email` are added. */
  scopes: readonly string[];
  loginHint?: string;
  /** The full `tokend login ...` that starts this sign-in again, for pages and hints. */
  retryCommand: string;
  timeoutMs: number;
  clock: Clock;
  tokenEndpoint: OAuthEndpoint;
  /** Stores the grant; what it returns is the session's result, and its page is what the browser sees. */
  finish: (grant: ConsentGrant) => Promise<{ value: T; page: ResultPage }>;
  /** The daemon's budget of TCP connections, shared with its other listeners. Default: this session's own. */
  connections?: ConnectionBudget;
  logger?: Logger;
}

type State = 'waiting' | 'exchanging' | 'finishing' | 'done' | 'timed-out' | 'closed';

/**
 * One interactive consent: a one-shot loopback listener for the redirect, PKCE S256 and a random
 * `state`. The result settles once — on the first callback that carries the right state (or on a
 * redirect URL pasted back through the API), on the deadline, or on cancel — and the listener closes
 * after that. The code, verifier and tokens never leave this object except through `finish`.
 */
export class ConsentSession<T> {
  readonly id = randomUUID();
  readonly authUrl: string;
  /**
   * A local address that redirects to authUrl: what the browser opener is given, so that the state and
   * code challenge never appear in a process's argv, which every local user can read.
   */
  readonly startUrl: string;
  readonly redirectUri: string;
  readonly expiresAt: number;
  readonly result: Promise<T>;

  private state: State = 'waiting';
  private resolveResult!: (value: T) => void;
  private rejectResult!: (error: TokendError) => void;
  private deadlineTimer: TimerHandle | undefined;
  private deadlinePassed = false;
  /** Why the last response that carried a code was refused upstream, for the paste-back answer. */
  private lastUpstreamFailure: TokendError | undefined;
  private readonly startPath: string;
  /** Aborts a code exchange in flight when the sign-in is cancelled. */
  private readonly abort = new AbortController();
  /** The callback being handled, if any: close() waits for it. */
  private work: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly options: ConsentOptions<T>,
    private readonly server: Server,
    private readonly guard: OwnerOnlyGuard,
    private readonly expectedState: string,
    private readonly codeVerifier: Secret,
    authUrl: string,
    redirectUri: string,
  ) {
    this.authUrl = authUrl;
    this.redirectUri = redirectUri;
    this.startPath = `/start/${randomBytes(16).toString('base64url')}`;
    this.startUrl = `${new URL(redirectUri).origin}${this.startPath}`;
    this.expiresAt = options.clock.now() + options.timeoutMs;
    this.result = new Promise<T>((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    // Callers may not attach a handler before the session ends (e.g. nobody waits on a login).
    this.result.catch(() => undefined);
    this.deadlineTimer = options.clock.setTimer(options.timeoutMs, () => this.timeOut());
  }

  static async start<T>(options: ConsentOptions<T>): Promise<ConsentSession<T>> {
    // Tight limits: the only legitimate client is a browser delivering one redirect.
    // A browser always sends Host; without it Node would answer a bare 400 of its own.
    const server = createServer({ connectionsCheckingInterval: 1_000, requireHostHeader: false });
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    server.keepAliveTimeout = 1_000;
    server.timeout = 20_000;
    // Any local user can reach 127.0.0.1; only the owner's browser may deliver the redirect. Where the
    // owner of a connection cannot be looked up (macOS), the state, PKCE and the checks on the
    // consenting account are what remains.
    const guard = acceptOwnerOnly(server, {
      listener: 'consent',
      maxConnections: MAX_CONNECTIONS,
      budget: options.connections ?? createConnectionBudget(MAX_CONNECTIONS * 2),
      whenUnsupported: 'accept',
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, LOOPBACK_HOST, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const redirectUri = `http://${LOOPBACK_HOST}:${port}${CALLBACK_PATH}`;
    const state = randomBytes(24).toString('base64url');
    // Loaded at the first consent, not at start: the daemon needs it for nothing else (its import is
    // about 40 ms and a tenth of the idle daemon's memory; docs/performance.md).
    const { CodeChallengeMethod, OAuth2Client } = await import('google-auth-library');
    const oauth = new OAuth2Client({
      clientId: options.client.clientId,
      redirectUri,
      endpoints: { oauth2AuthBaseUrl: options.client.authUri },
    });
    const pkce = await oauth.generateCodeVerifierAsync();
    const scopes = [...new Set([...options.scopes, 'openid', 'email'])];
    const authUrl = oauth.generateAuthUrl({
      access_type: 'offline',
      prompt: 'consent',
      scope: scopes,
      state,
      code_challenge: pkce.codeChallenge ?? '',
      code_challenge_method: CodeChallengeMethod.S256,
      ...(options.loginHint === undefined ? {} : { login_hint: options.loginHint }),
    });
    const session = new ConsentSession(options, server, guard, state, new Secret(pkce.codeVerifier), authUrl, redirectUri);
    server.on('request', (req, res) => void session.onRequest(req, res));
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => answerClientError(error, socket, 'text'));
    server.on('connect', (request: IncomingMessage, socket: Socket) => refuseConnect(request, socket, 'text'));
    server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => refuseExpectation(request, response, 'text'));
    return session;
  }

  get finished(): boolean {
    return this.state === 'done' || this.state === 'timed-out' || this.state === 'closed';
  }

  /** The paste-back path for SSH sessions: the redirected URL as the browser showed it. */
  async completeWithRedirectUrl(pasted: string): Promise<T> {
    let url: URL;
    try {
      url = new URL(pasted.trim());
    } catch {
      throw new LoginFailedError('the pasted text is not a URL', {
        hint: `paste the whole address the browser was sent to; it starts with ${this.redirectUri}`,
      });
    }
    if (url.origin + url.pathname !== this.redirectUri) {
      throw new LoginFailedError('the pasted URL is not the redirect of this sign-in', {
        hint: `it must start with ${this.redirectUri}`,
      });
    }
    this.lastUpstreamFailure = undefined;
    const outcome = await this.track(this.handleCallback(url.searchParams));
    if (!outcome.accepted) {
      // An upstream that cannot be reached is not a bad paste: its own fix comes first, then the same paste.
      const upstream = this.upstreamHint();
      throw new LoginFailedError(`the pasted URL was refused: ${outcome.page.lines[0] ?? outcome.page.heading}`, {
        hint: upstream === undefined ? `paste the address of the latest consent, or run \`${this.options.retryCommand}\`` : `${upstream}; the sign-in stays open: then paste the same address again`,
      });
    }
    return this.result;
  }

  private upstreamHint(): string | undefined {
    return this.lastUpstreamFailure?.hint;
  }

  /**
   * Ends the sign-in unless it is already storing its result (then it completes). A code exchange in
   * flight is aborted, so nothing is stored after a cancel.
   */
  cancel(reason: string): void {
    if (this.state === 'finishing') return;
    this.settleError(new LoginFailedError(`the sign-in was cancelled: ${reason}`, { hint: `run \`${this.options.retryCommand}\`` }));
    this.abort.abort();
  }

  /** Cancels, then waits for a callback in progress to finish storing or to give up. */
  async close(reason: string): Promise<void> {
    this.cancel(reason);
    await this.work.catch(() => undefined);
  }

  /** Anyone on this machine can reach the listener: nothing they send may throw out of here. */
  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = URL.canParse(req.url ?? '', 'http://127.0.0.1') ? new URL(req.url ?? '', 'http://127.0.0.1') : undefined;
      if (req.method === 'GET' && url?.pathname === this.startPath && this.state === 'waiting') {
        res.writeHead(302, { location: this.authUrl, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', connection: 'close' });
        res.end();
        return;
      }
      if (req.method !== 'GET' || url?.pathname !== CALLBACK_PATH) {
        send(res, 404, { outcome: 'failed', heading: 'Not found', lines: ['This address only receives the sign-in redirect.'] });
        return;
      }
      if (!isTopLevelNavigation(req)) {
        // A page may make the owner's own browser request this address (an <img>, a fetch): only the
        // browser following the OAuth server's redirect is a top-level navigation.
        send(res, 403, { outcome: 'failed', heading: 'Not a sign-in redirect', lines: ['This address only receives the browser\'s redirect after consent.'] });
        return;
      }
      const outcome = await this.track(this.handleCallback(url.searchParams));
      send(res, outcome.status, outcome.page);
    } catch {
      if (!res.headersSent) send(res, 500, { outcome: 'failed', heading: 'Sign-in failed', lines: [`Run \`${this.options.retryCommand}\`.`] });
      else res.destroy();
    }
  }

  private async handleCallback(
    params: URLSearchParams,
  ): Promise<{ accepted: boolean; status: number; page: ResultPage }> {
    if (this.state === 'timed-out') {
      return refuse(408, 'Sign-in timed out', ['This sign-in took too long and was abandoned.', `Run \`${this.options.retryCommand}\`.`]);
    }
    if (this.state !== 'waiting') {
      return refuse(409, 'Sign-in already handled', ['This sign-in has already been completed or cancelled.']);
    }
    const repeated = ['state', 'code', 'error'].find((name) => params.getAll(name).length > 1);
    if (repeated !== undefined) {
      // Which one would count is a guess, and a forged second value is the classic way to make one.
      return refuse(400, 'Sign-in response malformed', [`The response carries "${repeated}" more than once.`, 'Use the most recent link that `tokend login` printed, or run it again.']);
    }
    if (!this.stateMatches(params.get('state'))) {
      // Left open: a stray or forged request must not be able to end the real sign-in.
      return refuse(400, 'Sign-in response not recognized', [
        'This response does not belong to the sign-in in progress (the state does not match).',
        'Use the most recent link that `tokend login` printed, or run it again.',
      ]);
    }
    const error = params.get('error');
    if (error !== null) {
      const code = /^[a-z_]{1,64}$/.test(error) ? error : 'unknown_error';
      const reason =
        code === 'access_denied' ? 'access was denied on the consent screen' : `the OAuth server reported ${code}`;
      const retry = `run \`${this.options.retryCommand}\``;
      this.settleError(new LoginFailedError(`sign-in failed: ${reason}`, { hint: `${retry} and allow access on the consent screen` }));
      return refuse(403, 'Access denied', [`Sign-in failed: ${reason}.`, `Nothing was stored. To try again, ${retry}.`]);
    }
    const code = params.get('code');
    if (code === null || code.length === 0 || code.length > 2048) {
      return refuse(400, 'Sign-in response incomplete', ['The response carries no authorization code.']);
    }
    this.state = 'exchanging';
    let grant: ConsentGrant;
    try {
      grant = await this.exchange(code);
    } catch (caught) {
      if (this.finished) return cancelledPage();
      // Left open: a code that cannot be exchanged (forged, spent, or refused upstream) must not end
      // the real sign-in; the same link can be used again. Unless its deadline passed meanwhile.
      this.state = 'waiting';
      if (this.deadlinePassed) this.timeOut();
      // An outage is the OAuth server's failure (a 502 page), not a refusal of this sign-in.
      const upstream = toUpstreamError(caught, 'the authorization code could not be exchanged');
      const failure = isTokendError(upstream) ? upstream : new LoginFailedError('exchanging the authorization code failed', {
              cause: caught,
              hint: 'the sign-in is still open: open its link again',
            });
      this.options.logger?.warn({ event: 'consent_response_refused', err: failure }, 'a sign-in response was refused');
      this.lastUpstreamFailure = failure instanceof LoginFailedError ? undefined : failure;
      return refuse(failure instanceof LoginFailedError ? 403 : 502, 'Sign-in not completed', [
        failure.message,
        'The sign-in is still open: open the link that `tokend login` printed again and choose the right account.',
      ]);
    }
    if (this.state !== 'exchanging') return cancelledPage();
    this.state = 'finishing';
    try {
      const { value, page } = await this.options.finish(grant);
      this.settle(value);
      return { accepted: true, status: 200, page };
    } catch (caught) {
      const failure = isTokendError(caught) ? caught : new LoginFailedError('storing the sign-in failed', {
              cause: caught,
              hint: `\`tokend status\` shows the store and why it failed; then run \`${this.options.retryCommand}\``,
            });
      this.settleError(failure);
      return refuse(502, 'Sign-in failed', [failure.message, failure.hint ?? `Run \`${this.options.retryCommand}\`.`]);
    }
  }

  /** Code → tokens, and the account they belong to; refuses an account other than the one hinted. */
  private async exchange(code: string): Promise<ConsentGrant> {
    const grant = await this.options.tokenEndpoint.exchangeCode(
      this.options.client,
      { code: new Secret(code), codeVerifier: this.codeVerifier, redirectUri: this.redirectUri },
      this.abort.signal,
    );
    if (grant.refreshToken === undefined) throw new LoginFailedError('the OAuth server returned no refresh token', {
        hint: `run \`${this.options.retryCommand}\`; if it happens again, remove the app's access at https://myaccount.google.com/permissions first`,
      });
    const email = emailFromIdToken(grant.idToken, this.options.client.clientId);
    const hint = this.options.loginHint;
    if (hint !== undefined && email.toLowerCase() !== hint.toLowerCase()) {
      throw new LoginFailedError(`the consent was given as ${email}, but this sign-in is for ${hint} (--login-hint); nothing was stored`, {
        hint: `the sign-in is still open: open its link again and choose ${hint}`,
      });
    }
    return { email, grant: { ...grant, refreshToken: grant.refreshToken } };
  }

  private track<R>(promise: Promise<R>): Promise<R> {
    this.work = Promise.allSettled([this.work, promise]);
    return promise;
  }

  private stateMatches(received: string | null): boolean {
    if (received === null) return false;
    const a = Buffer.from(received);
    const b = Buffer.from(this.expectedState);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private settle(value: T): void {
    if (this.finished) return;
    this.state = 'done';
    this.resolveResult(value);
    this.shutdown(0);
  }

  private settleError(error: TokendError): void {
    if (this.finished) return;
    this.state = 'closed';
    this.rejectResult(error);
    this.shutdown(0);
  }

  private timeOut(): void {
    this.deadlinePassed = true;
    if (this.state !== 'waiting') return; // an exchange in flight decides; a failed one then times out
    this.state = 'timed-out';
    const within = formatWait(this.options.timeoutMs);
    this.rejectResult(
      new LoginTimeoutError(`no sign-in arrived within ${within}`, {
        hint: `run \`${this.options.retryCommand}\` and finish the consent within ${within}`,
        details: { timeoutSeconds: Math.round(this.options.timeoutMs / 1000) },
      }),
    );
    this.shutdown(LATE_ANSWER_GRACE_MS);
  }

  private shutdown(afterMs: number): void {
    this.deadlineTimer?.cancel();
    this.deadlineTimer = undefined;
    const close = () => {
      // close() also stops Node's header and idle timeouts, so nothing may be left open after it:
      // idle connections go now, the answer in flight gets a moment to be written, then all go.
      this.server.close();
      this.server.closeIdleConnections();
      setTimeout(() => {
        this.server.closeAllConnections();
        this.guard.closeAll();
      }, CLOSE_GRACE_MS).unref();
    };
    if (afterMs === 0) close();
    else this.options.clock.setTimer(afterMs, close);
  }
}

/**
 * Browsers send Sec-Fetch-Dest on every request: `document` for a page load, `image`, `empty` (fetch),
 * `iframe` for what a page makes them request. Clients that send none (curl) are let through.
 */
function isTopLevelNavigation(req: IncomingMessage): boolean {
  const dest = req.headers['sec-fetch-dest'];
  return dest === undefined || dest === 'document';
}

/** `5 min`, `1 min 30 s`, `45 s`: as the setting (`loginTimeoutSeconds`) is given. */
export function formatWait(ms: number): string {
  const seconds = Math.round(ms / 1000);
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  if (minutes === 0) return `${rest} s`;
  return rest === 0 ? `${minutes} min` : `${minutes} min ${rest} s`;
}

function cancelledPage() {
  return refuse(409, 'Sign-in cancelled', ['This sign-in was cancelled before it finished; nothing was stored.', 'Run `tokend login` again.']);
}

function refuse(status: number, heading: string, lines: string[]) {
  return { accepted: false, status, page: { outcome: 'failed' as const, heading, lines } };
}

function send(res: ServerResponse, status: number, page: ResultPage): void {
  const body = renderResultPage(page);
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    connection: 'close',
  });
  res.end(body);
}
