import { setImmediate as tick } from 'node:timers/promises';
import type { ClientConfig } from '../../src/oauth/client-config.js';
import { Secret } from '../../src/secret.js';
import { GrantInvalidError, type OAuthEndpoint, type TokenGrant } from '../../src/oauth/token-endpoint.js';
import { UpstreamUnavailableError } from '../../src/errors.js';
import { RetryableError } from '../../src/oauth/retry.js';

export type FakeFault = 'unavailable' | 'invalid_grant' | 'invalid_rapt';

/**
 * An in-memory token endpoint for unit tests of the broker: it mints numbered tokens with exactly the
 * scopes asked for, counts calls, and fails on demand. (Integration tests use the real stand-in.)
 */
export class FakeUpstream implements OAuthEndpoint {
  refreshCalls: Array<{ refreshToken: string; scopes: readonly string[] }> = [];
  revokeCalls: string[] = [];
  faults: FakeFault[] = [];
  down = false;
  lifetimeSeconds = 3600;
  rotate = false;
  /** Overrides the `scope` of refresh answers (a server that ignores narrowing). */
  answerScope: string | undefined;
  /** Resolves pending refreshes only when released, to hold many callers in flight at once. */
  gate: Promise<void> | undefined;
  /** Sent as Retry-After with 'unavailable' answers. */
  retryAfterMs: number | undefined;
  /** The same for revocations. */
  revokeGate: Promise<void> | undefined;
  private counter = 0;

  async refresh(_client: ClientConfig, refreshToken: Secret, scopes: readonly string[]): Promise<TokenGrant> {
    this.refreshCalls.push({ refreshToken: refreshToken.reveal(), scopes });
    await tick();
    if (this.gate !== undefined) await this.gate;
    const fault = this.down ? 'unavailable' : this.faults.shift();
    if (fault === 'unavailable') {
      throw new RetryableError('the OAuth server at fake answered HTTP 503', this.retryAfterMs === undefined ? {} : { retryAfterMs: this.retryAfterMs });
    }
    if (fault === 'invalid_grant') throw new GrantInvalidError(undefined);
    if (fault === 'invalid_rapt') throw new GrantInvalidError('invalid_rapt');
    this.counter++;
    return {
      accessToken: new Secret(`access-${this.counter}`),
      expiresInSeconds: this.lifetimeSeconds,
      scope: this.answerScope ?? scopes.join(' '),
      refreshToken: this.rotate ? new Secret(`refresh-rotated-${this.counter}`) : undefined,
      idToken: undefined,
    };
  }

  exchangeCode(): Promise<TokenGrant> {
    return Promise.reject(new UpstreamUnavailableError('the fake upstream does not exchange codes', { hint: 'use the OAuth stand-in' }));
  }

  async revoke(_client: ClientConfig, token: Secret): Promise<void> {
    this.revokeCalls.push(token.reveal());
    if (this.revokeGate !== undefined) await this.revokeGate;
    if (this.down) throw new RetryableError('the OAuth server at fake answered HTTP 503');
  }
}

export const fakeClient: ClientConfig = {
  clientId: 'fake-client',
  clientSecret: new Secret('fake-secret'),
  authUri: 'https://auth.example/auth',
  tokenUri: 'https://auth.example/token',
  revokeUri: 'https://auth.example/revoke',
  projectId: 'fake-project',
};
