/**
 * The broker with the real token endpoint client against the oidc-provider stand-in, served on a real
 * Unix socket, with time driven by a manual clock: background refresh, retries and outages.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { AccountRegistry } from '../../src/broker/accounts.js';
import { Broker } from '../../src/broker/broker.js';
import { LoginManager } from '../../src/broker/login.js';
import { ScopeSet } from '../../src/broker/scopes.js';
import { ManualClock } from '../../src/clock.js';
import { createLogger } from '../../src/log.js';
import { TokenEndpoint } from '../../src/oauth/token-endpoint.js';
import { buildApp } from '../../src/server/app.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { consentViaHttp } from '../helpers/consent-driver.js';
import { artifactLogPath } from '../helpers/daemon-process.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { pino } from 'pino';

const G = 'https://www.googleapis.com/auth/';
/** Short-lived tokens (Google's last an hour), so that background refresh runs many times. */
const TTL_SECONDS = 1200;
let standin: StandinHandle;
let clock: ManualClock;
let broker: Broker;
let socket: string;
let close: (() => Promise<void>) | undefined;
const store = new MemoryStore();

before(async () => {
  standin = await startStandin({ accessTokenTtlSeconds: TTL_SECONDS });
  clock = new ManualClock(Date.now());
  const logger = createLogger({ level: 'info', destination: pino.destination({ dest: artifactLogPath('refresh-integration'), sync: true }) });
  const upstream = new TokenEndpoint({ timeoutMs: 2000, retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 } });
  broker = new Broker({ accounts: new AccountRegistry(store, logger), upstream, clock, logger });
  const logins = new LoginManager({ broker, upstream, clock, logger });
  const started = await logins.start({ clientSecrets: standin.clientSecretsJson(), scopes: ScopeSet.parse('bigquery,cloud-platform') });
  const page = await consentViaHttp(started.authUrl);
  assert.equal(page.status, 200, page.body);
  await broker.setDefault(standin.email);
  socket = join(mkdtempSync(join(tmpdir(), 'tokend-refresh-')), 'tokend.sock');
  const app = buildApp({ broker, logger });
  await app.listen({ path: socket });
  close = async () => {
    await app.close();
    await broker.stop();
  };
});

after(async () => {
  // Whatever before() got to: a failed start must not leave the stand-in holding the file open.
  await close?.();
  await standin?.stop();
});

beforeEach(() => {
  standin.setRotateRefreshTokens(false);
  standin.setDown(false);
  standin.faults.length = 0;
  standin.resetStats();
});

function fetchToken(scopes: string): Promise<{ status: number; body: { access_token: string; expires_in: number; error?: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    const path = `/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(scopes)}`;
    const req = request({ socketPath: socket, path, headers: { 'metadata-flavor': 'Google' } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('refresh against the stand-in', () => {
  test('recently used tokens are refreshed in the background; no caller waits or gets 300 s or less', async () => {
    let minimum = Infinity;
    const seen = new Set<string>();
    // Two and a half hours of a client asking once a minute.
    for (let minute = 0; minute < 150; minute++) {
      const refreshesBefore = standin.stats.refreshGrants;
      const { status, body } = await fetchToken('bigquery');
      assert.equal(status, 200);
      if (minute > 0) {
        // Every refresh after the first came from the background timer, never from a caller's request.
        assert.equal(standin.stats.refreshGrants, refreshesBefore, `minute ${minute}: a caller waited for a refresh`);
      }
      minimum = Math.min(minimum, body.expires_in);
      seen.add(body.access_token);
      clock.advance(60_000);
      await broker.idle();
    }
    assert.ok(minimum > 300, `a token with ${minimum} s left was served`);
    // 150 minutes of 20-minute tokens, renewed when 7 minutes are left: one every 13 minutes.
    assert.ok(standin.stats.refreshGrants >= 11 && standin.stats.refreshGrants <= 13, `${standin.stats.refreshGrants} refreshes`);
    assert.ok(seen.size >= 11, `only ${seen.size} distinct tokens`);
    // Every refresh asked for exactly the caller's scope, never more.
    assert.ok(standin.refreshRequests.every((r) => r.scope === `${G}bigquery`), 'standin.refreshRequests.every((r) => r.scope === `${G}bigquery`)');
    const newest = [...seen].at(-1)!;
    assert.equal((await standin.introspect(newest)).scope, `${G}bigquery`);
  });

  test('503 twice, then 200: the caller gets a token', async () => {
    standin.faults.push({ status: 503 }, { status: 503 });
    const { status, body } = await fetchToken('cloud-platform');
    assert.equal(status, 200);
    assert.equal((await standin.introspect(body.access_token)).active, true);
    assert.equal(standin.stats.refreshGrants, 3);
  });

  test('a reset connection is retried like a 503', async () => {
    standin.faults.push({ reset: true });
    const { status } = await fetchToken('bigquery,cloud-platform');
    assert.equal(status, 200);
    assert.equal(standin.stats.refreshGrants, 2);
  });

  test('upstream down for good: cached tokens are served until they expire, then a clear error', async () => {
    const first = await fetchToken(`${G}cloud-platform openid`);
    assert.equal(first.status, 200);
    standin.setDown(true, { reset: true });
    clock.advance((TTL_SECONDS - 300) * 1000); // 5 minutes left: background refreshes failed meanwhile
    await broker.idle();
    assert.ok(standin.stats.refreshGrants > 1, 'the background refresh was tried');
    const stale = await fetchToken(`${G}cloud-platform openid`);
    assert.equal(stale.status, 200);
    assert.equal(stale.body.access_token, first.body.access_token);
    assert.ok(stale.body.expires_in <= 300 && stale.body.expires_in > 0, String(stale.body.expires_in));
    clock.advance(301_000);
    await broker.idle();
    const failed = await fetchToken(`${G}cloud-platform openid`);
    assert.equal(failed.status, 503);
    assert.equal(failed.body.error?.code, 'upstream_unavailable');
    assert.match(failed.body.error?.message ?? '', /could not be reached/);
    standin.setDown(false);
    clock.advance(60_000);
    const recovered = await fetchToken(`${G}cloud-platform openid`);
    assert.equal(recovered.status, 200);
  });

  test('a hanging upstream does not hold a caller that has a valid cached token', async () => {
    const first = await fetchToken(`${G}bigquery openid`);
    assert.equal(first.status, 200);
    standin.setDown(true, { delayMs: 3_000 });
    clock.advance((TTL_SECONDS - 200) * 1000); // the background refresh starts and hangs upstream
    const timersBefore = clock.pendingTimers();
    const pending = fetchToken(`${G}bigquery openid`);
    // The caller joins the hanging refresh and starts its wait budget (a timer on the driven clock);
    // once the budget runs out it gets the cached token.
    while (clock.pendingTimers() === timersBefore) await new Promise((resolve) => setImmediate(resolve));
    clock.advance(broker.policy.requestWaitMs);
    const served = await pending;
    assert.equal(served.status, 200);
    assert.equal(served.body.access_token, first.body.access_token);
    standin.setDown(false);
    await broker.idle();
  });

  test('rotating refresh tokens: concurrent refreshes for one account stay valid, the newest token is stored', async () => {
    standin.setRotateRefreshTokens(true);
    const storedToken = async () => JSON.parse((await store.getPassword('tokend', 'alice@example.com'))!).refresh_token as string;
    const before = await storedToken();
    // Three uncached scope sets at once: the refreshes must run one after another, each with the token
    // the previous one returned — reusing a rotated token makes the server revoke the whole grant.
    const scopeSets = [`${G}bigquery email`, `${G}cloud-platform email`, `${G}bigquery ${G}cloud-platform email`];
    const responses = await Promise.all(scopeSets.map((scopes) => fetchToken(scopes)));
    assert.deepEqual(responses.map((r) => r.status), [200, 200, 200], JSON.stringify(responses.map((r) => r.body.error)));
    const after = await storedToken();
    assert.notEqual(after, before, 'the rotated refresh token was stored');
    assert.equal((await standin.introspect(after)).active, true);
    assert.equal((await standin.introspect(before)).active, false);
    for (const { body } of responses) assert.equal((await standin.introspect(body.access_token)).active, true);
  });
});
