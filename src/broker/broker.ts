import { ownLogLocation } from '../log-location.js';
import type { Clock, TimerHandle } from '../clock.js';
import type {
  TokendError} from '../errors.js';
import {
  ConsentRequiredError,
  InvalidScopeError,
  isTokendError,
  NotLoggedInError,
  ScopeNotGrantedError,
  StoreTimeoutError,
  StoreUnavailableError,
  UpstreamRejectedError,
  UpstreamThrottledError,
  UpstreamUnavailableError,
} from '../errors.js';
import type { Logger } from '../log.js';
import type { ClientConfig } from '../oauth/client-config.js';
import { RetryableError } from '../oauth/retry.js';
import { GrantInvalidError, toUpstreamError, type OAuthEndpoint, type TokenGrant } from '../oauth/token-endpoint.js';
import type { Secret } from '../secret.js';
import { Account } from './account.js';
import { AuditTrail, type CacheOutcome, type CallerInfo } from './audit-trail.js';
import { BackgroundPacer } from './background-pacer.js';
import { loginCommand } from './login-command.js';
import type { AccountRegistry } from './accounts.js';
import { ScopeSet } from './scopes.js';
import { SingleFlight } from './single-flight.js';
import { defaultUpstreamBudgetPolicy, UpstreamBudget, type UpstreamBudgetPolicy } from './upstream-budget.js';
import { cacheKey, remainingSeconds, TokenCache, type CachedToken } from './token-cache.js';

export type { CacheOutcome, CallerInfo } from './audit-trail.js';

export interface FreshnessPolicy {
  /** A cached token is served only with more than this left, while the upstream is healthy. */
  minServeSeconds: number;
  /** Background refresh starts when this fraction of a token's life has passed. */
  refreshAtFraction: number;
  /** How long a caller that has a valid cached token waits for a refresh before it gets the cached one. */
  requestWaitMs: number;
  /** Entries used within this window are kept fresh in the background. */
  activeWindowMs: number;
  /** After a failed refresh, callers are not sent upstream again for this long (cached tokens are served). */
  failureCooldownMs: number;
  /** Background retry after a failed refresh: first delay, doubled up to the maximum. */
  backgroundRetryMs: number;
  backgroundRetryMaxMs: number;
  /**
   * A background refresh comes at least this long after the token was obtained. A token that lives
   * shorter is not kept fresh in the background (callers refresh it, within the budget): an upstream
   * minting tokens of a few seconds would otherwise be asked again in a loop.
   */
  minBackgroundIntervalMs: number;
  maxCachedTokens: number;
  /** Distinct scope sets cached per account; beyond it the least recently used is dropped. */
  maxScopeSetsPerAccount: number;
  /** A background refresh is armed up to this fraction of the token's life before its time (random). */
  backgroundJitterFraction: number;
  /** Background refreshes started in any one second, across all accounts, at most. */
  maxBackgroundRefreshesPerSecond: number;
}

export const defaultFreshnessPolicy: FreshnessPolicy = {
  // Google's client libraries treat 300 s or less as expired and fetch again on every call.
  minServeSeconds: 360,
  refreshAtFraction: 0.75,
  requestWaitMs: 2_000,
  activeWindowMs: 60 * 60_000,
  failureCooldownMs: 5_000,
  backgroundRetryMs: 15_000,
  backgroundRetryMaxMs: 5 * 60_000,
  minBackgroundIntervalMs: 30_000,
  maxCachedTokens: 4096,
  maxScopeSetsPerAccount: 32,
  backgroundJitterFraction: 0.1,
  maxBackgroundRefreshesPerSecond: 10,
};

export interface TokenRequest {
  account: string;
  /** Absent: the account's default scopes. */
  scopes?: ScopeSet;
  caller?: CallerInfo;
}

export interface IssuedToken {
  account: string;
  scopes: ScopeSet;
  accessToken: Secret;
  expiresIn: number;
  cache: CacheOutcome;
}

export interface BrokerDeps {
  accounts: AccountRegistry;
  upstream: OAuthEndpoint;
  clock: Clock;
  logger: Logger;
  policy?: Partial<FreshnessPolicy>;
  upstreamBudget?: Partial<UpstreamBudgetPolicy>;
  /** For tests: where the background jitter comes from (default Math.random). */
  random?: () => number;
}

/** What the OAuth server did lately for one account, for `tokend status`. */
interface UpstreamHealth {
  lastSuccessAt?: number;
  lastFailureAt?: number;
  lastFailure?: string;
}

interface RefreshFailure {
  at: number;
  error: TokendError;
  retryDelayMs: number;
}

/** A hint users can paste: the login that (re)grants `scopes` for `account`, landing on that account. */
export function loginCommandFor(account: Account, scopes: ScopeSet): string {
  return loginCommand({ clientFile: account.clientFile, scopes, loginHint: account.email });
}

/**
 * The broker: accounts, scope checks, the token cache, single-flight refresh and background refresh.
 * It knows nothing of HTTP; every surface (socket API, metadata listener, tests) calls it.
 */
export class Broker {
  readonly policy: FreshnessPolicy;
  private readonly accounts: AccountRegistry;
  private readonly upstream: OAuthEndpoint;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly cache: TokenCache;
  /** Every token served; stop() and flushAudit() write the cache hits it still counts. */
  private readonly audit: AuditTrail;
  private readonly refreshes = new SingleFlight<CachedToken>();
  private readonly pacer: BackgroundPacer;
  private readonly failures = new Map<string, RefreshFailure>();
  private readonly timers = new Map<string, TimerHandle>();
  private readonly background = new Set<Promise<unknown>>();
  /** By email; kept across re-consents, so logging in again does not reset a runaway caller's budget. */
  private readonly budgets = new Map<string, UpstreamBudget>();
  private readonly budgetPolicy: UpstreamBudgetPolicy;
  private readonly upstreamHealth = new Map<string, UpstreamHealth>();
  /** Sets fetched at start (configured): kept fresh whether or not anyone asks. */
  private readonly pinned = new Set<string>();
  /** Refusals that never went upstream: logged once a minute per account, not once per request. */
  private readonly heldBack = new WeakSet<Error>();
  private readonly heldBackLoggedAt = new Map<string, number>();
  private readonly rotationWrites = new Map<Account, Promise<void>>();
  private stopped = false;

  constructor(deps: BrokerDeps) {
    this.accounts = deps.accounts;
    this.upstream = deps.upstream;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.policy = { ...defaultFreshnessPolicy, ...deps.policy };
    this.budgetPolicy = { ...defaultUpstreamBudgetPolicy, ...deps.upstreamBudget };
    this.cache = new TokenCache(this.policy.maxCachedTokens, this.policy.maxScopeSetsPerAccount, (key) => this.forgetKey(key));
    this.audit = new AuditTrail(deps.logger, deps.clock);
    this.pacer = new BackgroundPacer(this.policy.maxBackgroundRefreshesPerSecond, deps.random);
  }

  get registry(): AccountRegistry {
    return this.accounts;
  }

  async getToken(request: TokenRequest): Promise<IssuedToken> {
    try {
      return await this.getTokenOnce(request);
    } catch (error) {
      // The account was logged in again (or out) while its token was refreshed: ask once more, anew.
      if (!(error instanceof AccountChangedError)) throw error;
      return this.getTokenOnce(request);
    }
  }

  /**
   * A cache hit that needs nothing awaited (no refresh, no rotation to store first), served at once;
   * undefined when getToken has more to do. Throws what getToken throws for the same request.
   */
  serveCached(request: TokenRequest): IssuedToken | undefined {
    const { account, scopes, key } = this.lookUp(request);
    return this.plainHit(account, scopes, key, request.caller);
  }

  private async getTokenOnce(request: TokenRequest): Promise<IssuedToken> {
    const { account, scopes, key } = this.lookUp(request);
    const hit = this.plainHit(account, scopes, key, request.caller);
    if (hit !== undefined) return hit;
    const cached = this.cache.get(key);
    let token: CachedToken;
    let outcome: CacheOutcome;
    if (cached !== undefined && this.isServable(cached, this.clock.now())) {
      token = cached;
      outcome = 'hit';
    } else {
      const refreshed = await this.refreshWithinBudget(key, account, scopes, cached);
      token = refreshed ?? (cached as CachedToken);
      outcome = refreshed === undefined ? 'stale' : 'miss';
    }
    // A token the last, still unstored rotation brought: the rotation must reach the store first.
    if (token.rotation > account.storedRotations) await this.storeRotation(account);
    return this.issue(account, scopes, key, token, outcome, request.caller, this.clock.now());
  }

  /** The cached token served at once, when it is servable and no rotation waits to be stored. */
  private plainHit(account: Account, scopes: ScopeSet, key: string, caller: CallerInfo | undefined): IssuedToken | undefined {
    const cached = this.cache.get(key);
    const now = this.clock.now();
    if (cached === undefined || !this.isServable(cached, now) || cached.rotation > account.storedRotations) return undefined;
    return this.issue(account, scopes, key, cached, 'hit', caller, now);
  }

  /** The account and scope set a request names, checked: healthy, and every scope granted. */
  private lookUp(request: TokenRequest): { account: Account; scopes: ScopeSet; key: string } {
    const account = this.accounts.resolve(request.account);
    this.assertHealthy(account);
    const scopes = request.scopes ?? account.defaultScopes;
    if (scopes.size === 0) {
      // An empty `scope=` would ask the OAuth server for everything the account granted.
      throw new InvalidScopeError(`no scopes asked for, and ${account.email} granted no API scopes to default to`, {
        hint: `name the scopes, e.g. \`tokend token --scopes cloud-platform\`, or run \`${loginCommandFor(account, ScopeSet.parse('cloud-platform'))}\``,
      });
    }
    this.assertGranted(account, scopes);
    return { account, scopes, key: cacheKey(account.email, scopes) };
  }

  private isServable(token: CachedToken, now: number): boolean {
    return remainingSeconds(token, now) > this.serveThresholdSeconds(token);
  }

  private issue(account: Account, scopes: ScopeSet, key: string, token: CachedToken, outcome: CacheOutcome, caller: CallerInfo | undefined, now: number): IssuedToken {
    token.lastUsedAt = now;
    token.uses++;
    this.scheduleBackgroundRefresh(key, token);
    const expiresIn = remainingSeconds(token, now);
    this.audit.served({ key, account: account.email, scopes, cache: outcome, expiresIn, caller });
    return { account: account.email, scopes, accessToken: token.accessToken, expiresIn, cache: outcome };
  }

  /**
   * Fetches a token for `scopes` now and keeps that set fresh from then on, used or not: the sets a
   * user names in the configuration, so that the first SDK call of the day is a cache hit.
   */
  async prefetch(account: string, scopes: ScopeSet): Promise<void> {
    const issued = await this.getToken({ account, scopes, caller: { transport: 'prefetch' } });
    this.pinned.add(cacheKey(issued.account, issued.scopes));
  }

  /** Stops keeping the prefetched sets fresh regardless of use (a reload names new ones). */
  unpinAll(): void {
    this.pinned.clear();
  }

  /** Resolves an account for read-only metadata (email, scopes) with the same errors as getToken. */
  describeAccount(name: string): { email: string; scopes: ScopeSet; granted: ScopeSet; projectId: string | undefined } {
    const account = this.accounts.resolve(name);
    return {
      email: account.email,
      scopes: account.defaultScopes,
      granted: account.granted,
      projectId: account.client.projectId,
    };
  }

  /**
   * Adopts a fresh consent: a new account, or a new refresh token for a known one. The old refresh
   * token is discarded, not revoked: Google revokes every token of the grant, the new one included.
   */
  async adoptConsent(params: {
    email: string;
    refreshToken: Secret;
    granted: ScopeSet;
    client: ClientConfig;
    clientFile: string | undefined;
  }): Promise<{ account: Account; isNew: boolean }> {
    const now = new Date(this.clock.wallTime()).toISOString();
    const existing = this.accounts.find(params.email);
    const account = new Account(
      params.email.toLowerCase(),
      params.refreshToken,
      params.granted,
      params.client,
      { state: 'ok' },
      existing?.createdAt ?? now,
      now,
      params.clientFile,
      // A login never makes an account the default by itself: the user does, after seeing which it is.
      existing?.defaultSince ?? null,
    );
    await this.accounts.replace(account, existing);
    if (existing !== undefined) this.forgetAccount(existing.email);
    this.logger.info(
      { event: 'account_saved', account: account.email, scopes: account.granted.scopes, new: existing === undefined },
      'account consent stored',
    );
    return { account, isNew: existing === undefined };
  }

  /** Makes `name` (an email, or `default`) the default account; the choice is stored with the record. */
  async setDefault(name: string): Promise<{ email: string; previous: string | undefined }> {
    const account = this.accounts.resolve(name);
    const previous = this.accounts.defaultAccount();
    if (previous === account) return { email: account.email, previous: account.email };
    const before = account.defaultSince;
    account.defaultSince = new Date(this.clock.wallTime()).toISOString();
    try {
      if (!(await this.accounts.save(account))) throw new AccountChangedError();
    } catch (error) {
      account.defaultSince = before;
      throw error;
    }
    if (previous !== undefined) {
      // The latest choice already wins; clearing the old one means that logging out this account
      // later leaves no default instead of falling back to an earlier choice.
      previous.defaultSince = null;
      await this.accounts.save(previous).catch((error: unknown) => {
        this.logger.error({ event: 'store_write_failed', account: previous.email, err: error }, 'could not clear the previous default');
      });
    }
    this.logger.info({ event: 'default_account_set', account: account.email, previous: previous?.email }, 'default account changed');
    return { email: account.email, previous: previous?.email };
  }

  /** Revokes upstream (unless told not to) and deletes the stored record. */
  async logout(name: string, options: { revoke: boolean }): Promise<{ email: string; revoked: boolean }> {
    if (!options.revoke && (await this.accounts.removeUnreadable(name))) {
      this.logger.info({ event: 'record_removed', entry: name }, 'unreadable record deleted');
      return { email: name, revoked: false };
    }
    const account = this.accounts.resolve(name);
    let revoked = false;
    if (options.revoke) {
      try {
        await account.upstreamQueue.run(() => this.upstream.revoke(account.client, account.refreshToken));
        revoked = true;
      } catch (error) {
        this.noteUpstream(account.email, error, 'revoking');
        // A grant that is already dead upstream is what revocation wants.
        if (!(error instanceof GrantInvalidError)) {
          const failure = toUpstreamError(error, 'the grant could not be revoked');
          throw isTokendError(failure)
            ? withHint(
                failure,
                `nothing was deleted; try again, or run \`tokend logout --account ${account.email} --no-revoke\` to delete the local copy only`,
              )
            : new UpstreamRejectedError('revoking the grant failed; nothing was deleted', {
                cause: error,
                hint: `try again, or run \`tokend logout --account ${account.email} --no-revoke\` to delete the local copy only`,
              });
        }
        revoked = true;
      }
    }
    await this.accounts.remove(account);
    this.forgetAccount(account.email);
    this.logger.info({ event: 'account_removed', account: account.email, revoked }, 'account logged out');
    return { email: account.email, revoked };
  }

  status(): BrokerStatus {
    const now = this.clock.now();
    const defaultAccount = this.accounts.defaultAccount();
    return {
      accounts: this.accounts.list().map((account) => ({
        email: account.email,
        default: account === defaultAccount,
        grantedScopes: [...account.granted.scopes],
        health: account.health,
        upstream: this.upstreamStatus(account.email),
        projectId: account.client.projectId,
        tokens: this.cache
          .forAccount(account.email)
          .filter((token) => token.expiresAt > now)
          .map((token) => ({
            scopes: [...token.scopes.scopes],
            expiresIn: remainingSeconds(token, now),
            lastUsedSecondsAgo: Math.floor((now - token.lastUsedAt) / 1000),
            backgroundRefresh: this.timers.has(cacheKey(account.email, token.scopes)),
          })),
      })),
      unreadableRecords: [...this.accounts.unreadableRecords()],
    };
  }

  private upstreamStatus(email: string): BrokerStatus['accounts'][number]['upstream'] {
    const health = this.upstreamHealth.get(email) ?? {};
    const iso = (at: number | undefined) => (at === undefined ? null : new Date(at).toISOString());
    return {
      lastSuccess: iso(health.lastSuccessAt),
      lastFailure: health.lastFailureAt === undefined ? null : { at: iso(health.lastFailureAt)!, reason: health.lastFailure ?? '' },
      pause: this.budgets.get(email)?.pause() ?? null,
    };
  }

  /** Resolves once every background refresh started so far has settled (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.background.size > 0) {
      await Promise.allSettled([...this.background]);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.values()) timer.cancel();
    this.timers.clear();
    await this.idle();
    this.audit.flush();
  }

  /** Writes the audit lines of the cache hits counted so far, synchronously (at exit, on a crash). */
  flushAudit(): void {
    this.audit.flush();
  }

  /**
   * Refreshes for a caller. A caller that has a still-valid token in the cache is not held up by a
   * failing or slow upstream (client libraries give up after about 3 s): after `requestWaitMs`, or on
   * an outage, it gets the cached token ("stale", undefined here) while the refresh goes on. A caller
   * without one waits for the refresh, which the token endpoint bounds.
   */
  private async refreshWithinBudget(
    key: string,
    account: Account,
    scopes: ScopeSet,
    cached: CachedToken | undefined,
  ): Promise<CachedToken | undefined> {
    const refreshing = this.refreshShared(key, account, scopes);
    const usable = () => cached !== undefined && remainingSeconds(cached, this.clock.now()) >= 1;
    if (!usable()) return refreshing;
    refreshing.catch(() => undefined); // still awaited below, or by other callers
    let timer: TimerHandle | undefined;
    const budget = new Promise<undefined>((resolve) => {
      timer = this.clock.setTimer(this.policy.requestWaitMs, () => resolve(undefined));
    });
    try {
      return await Promise.race([refreshing, budget]);
    } catch (error) {
      if (!isTemporary(error) || !usable()) throw error;
      return undefined;
    } finally {
      timer?.cancel();
    }
  }

  /** Upstreams that mint short-lived tokens would otherwise make every request a refresh. */
  private serveThresholdSeconds(token: CachedToken): number {
    const lifetimeSeconds = (token.expiresAt - token.obtainedAt) / 1000;
    return Math.min(this.policy.minServeSeconds, Math.floor(lifetimeSeconds / 2));
  }

  private assertHealthy(account: Account): void {
    if (account.health.state === 'consent_required') {
      const testing = diedAfterTestingLifetime(account)
        ? '; the refresh token lasted about 7 days, which is what Google allows while the OAuth consent screen is in "Testing" status: set it to "In production" (Cloud Console > APIs & Services > OAuth consent screen) so the next one lasts'
        : '';
      throw new ConsentRequiredError(`${account.email} must consent again: ${account.health.reason}`, {
        hint: `run \`${loginCommandFor(account, account.granted)}\`${testing}`,
        details: { account: account.email },
      });
    }
  }

  private assertGranted(account: Account, scopes: ScopeSet): void {
    if (scopes.isSubsetOf(account.granted)) return;
    const missing = scopes.missingFrom(account.granted);
    const names = ScopeSet.of(missing).toShortList().replace(/,/g, ', ');
    throw new ScopeNotGrantedError(`${account.email} has not granted ${names}`, {
      // Installed apps cannot consent incrementally: the new consent must name the union.
      hint: `run \`${loginCommandFor(account, account.granted.union(scopes))}\``,
      details: { account: account.email, missing, granted: [...account.granted.scopes] },
    });
  }

  /** One refresh per key at a time; after a failure, callers wait out a cool-down instead of piling on. */
  private refreshShared(key: string, account: Account, scopes: ScopeSet): Promise<CachedToken> {
    const failure = this.failures.get(key);
    if (failure !== undefined && this.clock.now() - failure.at < this.policy.failureCooldownMs) {
      return Promise.reject(failure.error);
    }
    return this.refreshes.run(key, () => this.refresh(key, account, scopes));
  }

  /**
   * `renewal`: a background refresh of a set already in use. It does not spend the account's budget
   * of new grants, so a runaway caller cannot starve the programs whose tokens are kept fresh; it
   * still waits out an account-wide pause.
   */
  private async refresh(key: string, account: Account, scopes: ScopeSet, kind: 'new' | 'renewal' = 'new'): Promise<CachedToken> {
    try {
      const token = await account.upstreamQueue.run(async () => {
        // A rotation the store has not taken yet goes in first: nothing goes upstream while it cannot,
        // not even a refresh that was queued behind the one that rotated.
        await this.storeRotation(account);
        return this.refreshUpstream(account, scopes, kind);
      });
      this.failures.delete(key);
      const cached = this.cache.set(key, token);
      // Kept even when the store fails: the next request stores the rotation and serves it, instead
      // of spending (and rotating) another grant upstream.
      await this.storeRotation(account);
      return cached;
    } catch (error) {
      const failure = isTokendError(error) ? error : new UpstreamUnavailableError('refreshing the token failed', {
              cause: error,
              hint: `ask again in a moment; ${ownLogLocation()} says what failed`,
            });
      if (isTemporary(failure)) {
        const previous = this.failures.get(key);
        this.failures.set(key, {
          at: this.clock.now(),
          error: failure,
          retryDelayMs: Math.min(
            this.policy.backgroundRetryMaxMs,
            previous === undefined ? this.policy.backgroundRetryMs : previous.retryDelayMs * 2,
          ),
        });
        if (!this.heldBack.has(failure)) {
          this.logger.warn({ event: 'refresh_failed', account: account.email, scopes: scopes.scopes, err: failure }, 'token refresh failed');
        }
      }
      throw failure;
    }
  }

  private async refreshUpstream(account: Account, scopes: ScopeSet, kind: 'new' | 'renewal'): Promise<CachedToken> {
    if (account.removed) throw new AccountChangedError();
    this.assertHealthy(account);
    const generation = account.generation;
    const budget = this.budgetFor(account.email);
    try {
      budget.admit(kind === 'new');
    } catch (error) {
      this.noteHeldBack(account.email, error as Error);
      throw error;
    }
    const startedAt = this.clock.now();
    let grant: TokenGrant | undefined;
    try {
      // In the exact strings the server granted them (Google's reference: send nothing else).
      const asGranted = scopes.scopes.map((scope) => account.granted.spelling(scope));
      grant = await this.upstream.refresh(account.client, account.refreshToken, asGranted);
      budget.succeeded();
      this.noteUpstream(account.email);
    } catch (error) {
      this.noteUpstream(account.email, error);
      if (error instanceof RetryableError) budget.failed(error.reason, error.retryAfterMs);
      if (error instanceof GrantInvalidError && generation === account.generation) {
        await this.markConsentRequired(account, error.reason);
        this.assertHealthy(account);
      }
      if (!(error instanceof GrantInvalidError)) throw toUpstreamError(error);
    }
    if (grant === undefined || generation !== account.generation || account.removed) throw new AccountChangedError();
    if (grant.scope !== undefined) {
      const answered = ScopeSet.fromGranted(grant.scope);
      const notGranted = scopes.missingFrom(answered);
      const extra = answered.missingFrom(scopes);
      if (notGranted.length > 0 || extra.length > 0) {
        // Serving it would hand the caller a token that does not match what it asked for: never widen.
        const what = notGranted.length > 0 ? `without ${ScopeSet.of(notGranted).toShortList()}` : `with more than asked (${ScopeSet.of(extra).toShortList()})`;
        throw new UpstreamRejectedError(`the OAuth server refreshed ${account.email} ${what}`, {
          hint: `the grant may have changed; run \`${loginCommandFor(account, account.granted)}\``,
        });
      }
    }
    if (grant.refreshToken !== undefined && !grant.refreshToken.equals(account.refreshToken)) {
      // The old one is dead upstream: the new one is the account now, stored before anything is
      // handed out (storeRotation).
      account.refreshToken = grant.refreshToken;
      account.updatedAt = new Date(this.clock.wallTime()).toISOString();
      account.rotations++;
      this.logger.info({ event: 'refresh_token_rotated', account: account.email }, 'the OAuth server rotated the refresh token');
    }
    const rotated = grant.refreshToken !== undefined && account.rotations > account.storedRotations;
    return {
      rotation: rotated ? account.rotations : 0,
      accountEmail: account.email,
      scopes,
      accessToken: grant.accessToken,
      obtainedAt: startedAt,
      expiresAt: startedAt + grant.expiresInSeconds * 1000,
      lastUsedAt: startedAt,
      uses: 0,
    };
  }

  /**
   * A rotated refresh token must be in the store before a token of the account is handed out: a
   * restart would otherwise find only the dead one. A failed write is the caller's error; the next
   * request tries again, and nothing goes upstream meanwhile.
   */
  private async storeRotation(account: Account): Promise<void> {
    while (account.unsaved) {
      // One write at a time per account, shared by every caller waiting for it (and its error).
      let write = this.rotationWrites.get(account);
      if (write === undefined) {
        write = this.writeRotation(account).finally(() => this.rotationWrites.delete(account));
        this.rotationWrites.set(account, write);
      }
      await write;
    }
  }

  private async writeRotation(account: Account): Promise<void> {
    const rotation = account.rotations;
    try {
      if (!(await this.accounts.save(account))) throw new AccountChangedError();
    } catch (error) {
      this.logger.error({ event: 'store_write_failed', account: account.email, err: error }, 'the rotated refresh token is only in memory until the store takes it');
      throw error;
    }
    account.storedRotations = Math.max(account.storedRotations, rotation);
  }

  private async markConsentRequired(account: Account, reason: string): Promise<void> {
    account.health = { state: 'consent_required', reason, since: new Date(this.clock.wallTime()).toISOString() };
    this.forgetAccount(account.email);
    this.logger.warn({ event: 'consent_required', account: account.email, reason }, 'account needs consent again');
    try {
      // Nothing is written when the account was logged out meanwhile (save returns false).
      await this.accounts.save(account);
    } catch (error) {
      // The mark still holds in memory; after a restart the next refresh would find out again.
      this.logger.error({ event: 'store_write_failed', account: account.email, err: error }, 'could not persist the account state');
    }
  }

  private forgetAccount(email: string): void {
    for (const token of this.cache.forAccount(email)) this.forgetKey(cacheKey(email, token.scopes));
    this.cache.deleteAccount(email);
  }

  /** An entry dropped from the cache is no longer kept fresh. */
  private forgetKey(key: string): void {
    this.timers.get(key)?.cancel();
    this.timers.delete(key);
    this.failures.delete(key);
  }

  /** Records an answer of the OAuth server (an error, or success when `error` is absent). */
  private noteUpstream(email: string, error?: unknown, doing = 'refreshing'): void {
    const health = this.upstreamHealth.get(email) ?? {};
    const now = this.clock.now();
    if (error === undefined) {
      health.lastSuccessAt = now;
    } else {
      health.lastFailureAt = now;
      const reason = error instanceof RetryableError ? error.reason : error instanceof GrantInvalidError ? error.reason : isTokendError(error) ? error.message : 'an unexpected error';
      health.lastFailure = `${doing}: ${reason}`;
    }
    this.upstreamHealth.set(email, health);
  }

  private noteHeldBack(email: string, error: Error): void {
    this.heldBack.add(error);
    const now = this.clock.now();
    if (now - (this.heldBackLoggedAt.get(email) ?? -Infinity) < 60_000) return;
    this.heldBackLoggedAt.set(email, now);
    this.logger.warn({ event: 'upstream_held_back', account: email, err: error }, 'new tokens are held back for this account');
  }

  private budgetFor(email: string): UpstreamBudget {
    let budget = this.budgets.get(email);
    if (budget === undefined) {
      budget = new UpstreamBudget(email, this.budgetPolicy, this.clock);
      this.budgets.set(email, budget);
    }
    return budget;
  }

  private scheduleBackgroundRefresh(key: string, token: CachedToken): void {
    if (this.stopped || this.timers.has(key)) return;
    const lifetime = token.expiresAt - token.obtainedAt;
    const failure = this.failures.get(key);
    // At the usual fraction of its life, but always a minute before callers would stop getting it.
    const lastServable = token.expiresAt - (this.serveThresholdSeconds(token) + 60) * 1000;
    const earliest = token.obtainedAt + this.policy.minBackgroundIntervalMs;
    if (failure === undefined && earliest >= token.expiresAt) return;
    const dueAt =
      failure !== undefined
        ? failure.at + failure.retryDelayMs
        : this.pacer.jittered(
            Math.max(earliest, Math.min(token.obtainedAt + Math.floor(lifetime * this.policy.refreshAtFraction), lastServable)),
            earliest,
            lifetime * this.policy.backgroundJitterFraction,
          );
    const delayMs = Math.max(0, dueAt - this.clock.now());
    this.timers.set(key, this.clock.setTimer(delayMs, () => this.runBackgroundRefresh(key)));
  }

  private runBackgroundRefresh(key: string): void {
    this.timers.delete(key);
    const token = this.cache.get(key);
    if (this.stopped || token === undefined) return;
    const now = this.clock.now();
    if (!this.pinned.has(key) && now - token.lastUsedAt > this.policy.activeWindowMs) {
      // Nobody asked lately: let it lapse; the next request refreshes on demand.
      this.cache.deleteExpired(now);
      return;
    }
    const account = this.accounts.find(token.accountEmail);
    if (account === undefined || account.health.state !== 'ok') return;
    const wait = this.pacer.delayBeforeStart(now);
    if (wait > 0) {
      this.timers.set(key, this.clock.setTimer(wait, () => this.runBackgroundRefresh(key)));
      return;
    }
    const work = this.refreshes
      .run(key, () => this.refresh(key, account, token.scopes, 'renewal'))
      .then(
        (fresh) => this.scheduleBackgroundRefresh(key, fresh),
        (error: unknown) => {
          if (isTemporary(error)) {
            const current = this.cache.get(key);
            if (current !== undefined && current.expiresAt > this.clock.now()) this.scheduleBackgroundRefresh(key, current);
          } else {
            this.logger.warn({ event: 'background_refresh_stopped', account: account.email, err: error }, 'background refresh stopped');
          }
        },
      );
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
  }
}

export interface BrokerStatus {
  accounts: Array<{
    email: string;
    default: boolean;
    grantedScopes: string[];
    health: Account['health'];
    /** The OAuth server's recent answers for this account: an outage shows here while `health` stays ok. */
    upstream: {
      lastSuccess: string | null;
      lastFailure: { at: string; reason: string } | null;
      /** tokend is holding off the OAuth server for this account (after a 429 or an outage). */
      pause: { seconds: number; reason: string } | null;
    };
    projectId: string | undefined;
    tokens: Array<{ scopes: string[]; expiresIn: number; lastUsedSecondsAgo: number; backgroundRefresh: boolean }>;
  }>;
  unreadableRecords: Array<{ entry: string; problem: string }>;
}

/** Internal: the account changed under a refresh; getToken retries once, then says so. */
class AccountChangedError extends NotLoggedInError {
  constructor() {
    super('the account was logged out or logged in again while its token was being refreshed', {
      hint: 'ask again; `tokend status` shows the accounts',
    });
  }
}

/**
 * Google expires the refresh tokens of an app in "Testing" publishing status 7 days after consent. A
 * grant that died a little after that is most likely this, and consenting again alone will not last.
 */
function diedAfterTestingLifetime(account: Account): boolean {
  if (account.health.state !== 'consent_required') return false;
  const livedMs = Date.parse(account.health.since) - Date.parse(account.updatedAt);
  const day = 24 * 60 * 60_000;
  return livedMs >= 7 * day && livedMs < 8 * day;
}

/**
 * Failures that say "not now" rather than "never" (the OAuth server or the store is down or slow):
 * callers holding a valid cached token get it, and background renewals retry with backoff.
 */
function isTemporary(error: unknown): boolean {
  return (
    error instanceof UpstreamUnavailableError ||
    error instanceof UpstreamThrottledError ||
    error instanceof StoreUnavailableError ||
    error instanceof StoreTimeoutError
  );
}

function withHint(error: TokendError, hint: string): TokendError {
  const Cls = error.constructor as new (message: string, options: object) => TokendError;
  return new Cls(error.message, { hint, details: error.details, cause: error });
}
