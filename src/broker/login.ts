import type { Clock } from '../clock.js';
import { LoginNotFoundError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ConnectionBudget } from '../net/owner-only.js';
import { parseClientSecrets } from '../oauth/client-config.js';
import { ConsentSession, type ConsentGrant } from '../oauth/consent.js';
import type { OAuthEndpoint } from '../oauth/token-endpoint.js';
import type { ResultPage } from '../oauth/result-page.js';
import type { LoginOutcome, LoginStarted } from '../protocol.js';
import type { Broker } from './broker.js';
import { loginCommand } from './login-command.js';
import { ScopeSet } from './scopes.js';

export interface LoginRequest {
  /** The content of the client file (the daemon may not see the caller's working directory). */
  clientSecrets: string;
  /** As the user passed it, for hints; never read by the daemon. */
  clientFile?: string;
  scopes: ScopeSet;
  loginHint?: string;
}

export type { LoginOutcome, LoginStarted };

export interface LoginManagerDeps {
  broker: Broker;
  upstream: OAuthEndpoint;
  clock: Clock;
  logger: Logger;
  timeoutMs?: number;
  /** The daemon's budget of TCP connections (shared with its other listeners). */
  connections?: ConnectionBudget;
}

const DEFAULT_LOGIN_TIMEOUT_MS = 5 * 60_000;
const MAX_PENDING = 8;

/** Consent sessions in progress, by id; the CLI starts one, then waits for it or pastes the redirect. */
export class LoginManager {
  private readonly sessions = new Map<string, ConsentSession<LoginOutcome>>();

  constructor(private readonly deps: LoginManagerDeps) {}

  async start(request: LoginRequest): Promise<LoginStarted> {
    const client = parseClientSecrets(request.clientSecrets, request.clientFile);
    this.prune();
    const open = [...this.sessions.values()].filter((session) => !session.finished);
    if (open.length >= MAX_PENDING) {
      // Too many sign-ins open at once: the oldest one still waiting gives way. Finished ones, kept
      // for a while so their result can be read, do not count.
      const oldest = open[0]!;
      oldest.cancel(`replaced by a newer sign-in (at most ${MAX_PENDING} may be open at once)`);
      this.sessions.delete(oldest.id);
    }
    const requested = request.scopes.withoutIdentity();
    const retryCommand = loginCommand({ clientFile: request.clientFile, scopes: requested, loginHint: request.loginHint });
    const session = await ConsentSession.start<LoginOutcome>({
      client,
      scopes: request.scopes.scopes,
      ...(request.loginHint === undefined ? {} : { loginHint: request.loginHint }),
      retryCommand,
      timeoutMs: this.deps.timeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS,
      clock: this.deps.clock,
      tokenEndpoint: this.deps.upstream,
      logger: this.deps.logger,
      ...(this.deps.connections === undefined ? {} : { connections: this.deps.connections }),
      finish: (grant) => this.finish(grant, requested, client, request.clientFile),
    });
    this.sessions.set(session.id, session);
    session.result.catch((error: unknown) =>
      this.deps.logger.warn({ event: 'login_failed', login: session.id, err: error }, 'consent did not complete'),
    );
    this.deps.logger.info(
      { event: 'login_started', login: session.id, scopes: request.scopes.scopes, redirect_uri: session.redirectUri },
      'consent started',
    );
    return {
      id: session.id,
      authUrl: session.authUrl,
      startUrl: session.startUrl,
      redirectUri: session.redirectUri,
      // The deadline is steady time; the CLI compares it with its own wall clock.
      expiresAt: new Date(this.deps.clock.wallTime() + (session.expiresAt - this.deps.clock.now())).toISOString(),
      retryCommand,
    };
  }

  /** Waits for the consent to finish, at most `maxWaitMs` (the CLI polls again after a timeout). */
  async wait(id: string, maxWaitMs: number): Promise<LoginOutcome | undefined> {
    const session = this.get(id);
    let timer: NodeJS.Timeout | undefined;
    const pending = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), maxWaitMs);
    });
    try {
      return await Promise.race([session.result, pending]);
    } finally {
      clearTimeout(timer);
    }
  }

  completeWithRedirectUrl(id: string, url: string): Promise<LoginOutcome> {
    return this.get(id).completeWithRedirectUrl(url);
  }

  cancel(id: string): void {
    this.get(id).cancel('abandoned by the client (tokend login was interrupted)');
    this.sessions.delete(id);
  }

  /** Ends every sign-in; one that is already storing its result finishes first. */
  async closeAll(reason: string): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map((session) => session.close(reason)));
  }

  private get(id: string): ConsentSession<LoginOutcome> {
    const session = this.sessions.get(id);
    if (session === undefined) {
      throw new LoginNotFoundError('no sign-in with that id is in progress (it may have finished or expired)', {
        hint: `run \`${loginCommand({})}\` to start a new one`,
      });
    }
    return session;
  }

  /** Forgets sessions that ended a while ago; their results stay readable for a short time. */
  private prune(): void {
    const now = this.deps.clock.now();
    for (const [id, session] of this.sessions) {
      if (session.finished && now - session.expiresAt > 0) this.sessions.delete(id);
    }
  }

  private async finish(
    { email, grant }: ConsentGrant,
    requested: ScopeSet,
    client: ReturnType<typeof parseClientSecrets>,
    clientFile: string | undefined,
  ): Promise<{ value: LoginOutcome; page: ResultPage }> {
    // The token response's `scope` is the truth: users can untick scopes on Google's consent screen.
    // Without a `scope` field (RFC 6749 §5.1), the grant is what was asked: the scopes plus `openid email`.
    const granted = ScopeSet.fromGranted(grant.scope ?? [...requested.scopes, 'openid', 'email'].join(' '));
    const { isNew } = await this.deps.broker.adoptConsent({
      email,
      refreshToken: grant.refreshToken,
      granted,
      client,
      clientFile,
    });
    const notGranted = requested.missingFrom(granted);
    // The account is known now: a new consent should land on it.
    const retryCommand = loginCommand({ clientFile, scopes: requested, loginHint: email });
    const outcome: LoginOutcome = {
      email,
      isNew,
      requested: [...requested.scopes],
      granted: [...granted.scopes],
      notGranted,
      retryCommand,
      defaultAccount: this.deps.broker.registry.defaultAccount()?.email ?? null,
    };
    this.deps.logger.info(
      { event: 'login_finished', account: email, granted: outcome.granted, not_granted: notGranted },
      'consent finished',
    );
    const grantedApis = granted.withoutIdentity().toDisplayList() || '(identity only)';
    const page: ResultPage =
      notGranted.length === 0
        ? {
            outcome: 'ok',
            heading: `Signed in as ${email}`,
            lines: [`tokend now holds this account's refresh token. Granted: ${grantedApis}.`, 'You can close this tab.'],
          }
        : {
            // The account works for what was granted: a warning, not a failure.
            outcome: 'partial',
            heading: `Signed in as ${email}, but not everything was granted`,
            lines: [
              `Programs can get tokens for ${grantedApis} now.`,
              `Not granted: ${ScopeSet.of(notGranted).toDisplayList()}. Programs asking for these are refused; to grant them, run \`${retryCommand}\` and leave them ticked.`,
            ],
          };
    return { value: outcome, page };
  }
}

