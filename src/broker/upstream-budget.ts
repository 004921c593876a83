import type { Clock } from '../clock.js';
import { UpstreamThrottledError, UpstreamUnavailableError } from '../errors.js';

export interface UpstreamBudgetPolicy {
  /** Grants an account may ask for at once. */
  burst: number;
  /** Grants per minute, refilled continuously, once the burst is spent. */
  perMinute: number;
  /** After a 429 or 5xx without Retry-After: the first pause, doubled on each further failure, up to the max. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** A server's Retry-After is honoured up to this. */
  retryAfterMaxMs: number;
}

export const defaultUpstreamBudgetPolicy: UpstreamBudgetPolicy = {
  burst: 30,
  perMinute: 30,
  backoffBaseMs: 5_000,
  backoffMaxMs: 60_000,
  retryAfterMaxMs: 10 * 60_000,
};

/**
 * How often one account may ask the OAuth server for tokens. Google rate-limits per OAuth client and
 * per user, so a runaway caller cycling through scope sets would get the user's whole client throttled:
 * a token bucket caps the grants, and after a 429 or an outage every scope set of the account waits
 * (Retry-After when the server gives one), not just the one that failed.
 */
export class UpstreamBudget {
  private tokens: number;
  private refilledAt: number;
  private pausedUntil = 0;
  private pauseMs = 0;
  private pauseReason = '';

  constructor(
    private readonly email: string,
    private readonly policy: UpstreamBudgetPolicy,
    private readonly clock: Clock,
  ) {
    this.tokens = policy.burst;
    this.refilledAt = clock.now();
  }

  /** Takes one grant from the budget (unless `spend` is false), or throws why the account may not go upstream now. */
  admit(spend = true): void {
    const now = this.clock.now();
    if (now < this.pausedUntil) {
      const seconds = Math.ceil((this.pausedUntil - now) / 1000);
      throw new UpstreamUnavailableError(`tokend is holding off the OAuth server for ${this.email} for ${seconds} s more: ${this.pauseReason}`, {
        hint: 'cached tokens are still served; `tokend status` shows the account health',
        details: { account: this.email, retryAfterSeconds: seconds },
      });
    }
    if (!spend) return;
    this.refill(now);
    if (this.tokens < 1) {
      const seconds = Math.ceil(((1 - this.tokens) * 60_000) / this.policy.perMinute / 1000);
      throw new UpstreamThrottledError(
        `too many new tokens asked for ${this.email}: tokend asks the OAuth server at most ${this.policy.perMinute} times a minute per account (after a burst of ${this.policy.burst}); try again in ${seconds} s`,
        {
          hint: 'a program is asking for many different scope sets; reuse one set (cached tokens are served without asking Google)',
          details: { account: this.email, retryAfterSeconds: seconds },
        },
      );
    }
    this.tokens -= 1;
  }

  succeeded(): void {
    this.pauseMs = 0;
  }

  /** The server was down or said to slow down: every scope set of the account pauses. */
  failed(reason: string, retryAfterMs: number | undefined): void {
    this.pauseMs = this.pauseMs === 0 ? this.policy.backoffBaseMs : Math.min(this.policy.backoffMaxMs, this.pauseMs * 2);
    const pause = Math.max(this.pauseMs, Math.min(this.policy.retryAfterMaxMs, retryAfterMs ?? 0));
    this.pausedUntil = this.clock.now() + pause;
    this.pauseReason = reason;
  }

  /** The account-wide pause in force, if any: for `tokend status`. */
  pause(): { seconds: number; reason: string } | undefined {
    const left = this.pausedUntil - this.clock.now();
    return left > 0 ? { seconds: Math.ceil(left / 1000), reason: this.pauseReason } : undefined;
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.refilledAt);
    this.tokens = Math.min(this.policy.burst, this.tokens + (elapsed * this.policy.perMinute) / 60_000);
    this.refilledAt = now;
  }
}
