import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AccountRegistry } from '../../src/broker/accounts.js';
import { HIT_INTERVAL_MS } from '../../src/broker/audit-trail.js';
import { Broker, defaultFreshnessPolicy, type FreshnessPolicy } from '../../src/broker/broker.js';
import { ScopeSet } from '../../src/broker/scopes.js';
import { ManualClock } from '../../src/clock.js';
import {
  ConsentRequiredError,
  NotLoggedInError,
  ScopeNotGrantedError,
  StoreUnavailableError,
  UpstreamThrottledError,
  UpstreamUnavailableError,
} from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { Secret } from '../../src/secret.js';
import { clientToStored } from '../../src/oauth/client-config.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { accountEntry } from '../../src/store/secret-store.js';
import type { UpstreamBudgetPolicy } from '../../src/broker/upstream-budget.js';
import { fakeClient, FakeUpstream } from '../helpers/fake-upstream.js';

const BQ = 'https://www.googleapis.com/auth/bigquery';
const CP = 'https://www.googleapis.com/auth/cloud-platform';
const EMAIL = 'alice@example.com';

async function setup(policy: Partial<FreshnessPolicy> = {}, upstreamBudget: Partial<UpstreamBudgetPolicy> = {}) {
  const clock = new ManualClock();
  const store = new MemoryStore();
  const upstream = new FakeUpstream();
  const accounts = new AccountRegistry(store, silentLogger());
  const broker = new Broker({ accounts, upstream, clock, logger: silentLogger(), policy, upstreamBudget });
  await broker.adoptConsent({
    email: EMAIL,
    refreshToken: new Secret('refresh-original'),
    granted: ScopeSet.of([BQ, CP, 'openid', 'email']),
    client: fakeClient,
    clientFile: '/home/alice/client_secrets.json',
  });
  await broker.setDefault(EMAIL);
  return { clock, store, upstream, accounts, broker };
}

describe('broker: tokens', () => {
  test('a miss refreshes with exactly the requested scopes; a repeat is a cache hit', async () => {
    const { broker, upstream } = await setup();
    const first = await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    assert.equal(first.cache, 'miss');
    assert.deepEqual(upstream.refreshCalls.map((c) => c.scopes), [[BQ]]);
    const second = await broker.getToken({ account: EMAIL, scopes: ScopeSet.parse(BQ) });
    assert.equal(second.cache, 'hit');
    assert.equal(second.accessToken.reveal(), first.accessToken.reveal());
    assert.equal(upstream.refreshCalls.length, 1);
  });

  test('one scope set asked of two accounts in turn gets each its own token', async () => {
    const { broker, upstream } = await setup();
    await broker.adoptConsent({ email: 'bob@example.com', refreshToken: new Secret('refresh-bob'), granted: ScopeSet.of([BQ]), client: fakeClient, clientFile: undefined });
    const scopes = ScopeSet.parse('bigquery');
    const asked = [];
    for (const account of [EMAIL, 'bob@example.com', EMAIL, 'bob@example.com']) asked.push(await broker.getToken({ account, scopes }));
    const [alice, bob, aliceAgain, bobAgain] = asked.map((issued) => ({ account: issued.account, token: issued.accessToken.reveal(), cache: issued.cache }));
    assert.notEqual(alice!.token, bob!.token);
    assert.deepEqual(aliceAgain, { ...alice, cache: 'hit' });
    assert.deepEqual(bobAgain, { ...bob, cache: 'hit' });
    assert.deepEqual(upstream.refreshCalls.map((call) => call.refreshToken), ['refresh-original', 'refresh-bob']);
  });

  test('scope sets are order-insensitive and deduplicated in the cache key', async () => {
    const { broker, upstream } = await setup();
    await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery,cloud-platform') });
    const again = await broker.getToken({ account: 'default', scopes: ScopeSet.parse(`${CP} bigquery bigquery`) });
    assert.equal(again.cache, 'hit');
    assert.equal(upstream.refreshCalls.length, 1);
  });

  test('refreshes send scopes in the exact strings the server granted', async () => {
    const { broker, upstream } = await setup();
    await broker.adoptConsent({
      email: EMAIL,
      refreshToken: new Secret('refresh-google-style'),
      granted: ScopeSet.fromGranted(`openid https://www.googleapis.com/auth/userinfo.email ${BQ}`),
      client: fakeClient,
      clientFile: undefined,
    });
    upstream.answerScope = `https://www.googleapis.com/auth/userinfo.email ${BQ}`;
    await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery email') });
    assert.deepEqual(upstream.refreshCalls[0]?.scopes, ['https://www.googleapis.com/auth/userinfo.email', BQ]);
  });

  test('without scopes, the granted API scopes are used (identity scopes left out)', async () => {
    const { broker, upstream } = await setup();
    await broker.getToken({ account: 'default' });
    assert.deepEqual(upstream.refreshCalls[0]?.scopes, [BQ, CP]);
  });

  test('expires_in is the true remaining lifetime in whole seconds', async () => {
    const { broker, clock } = await setup();
    const first = await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    assert.equal(first.expiresIn, 3600);
    clock.advance(10_500);
    const later = await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    assert.equal(later.cache, 'hit');
    assert.equal(later.expiresIn, 3589);
    assert.ok(Number.isInteger(later.expiresIn), 'Number.isInteger(later.expiresIn)');
  });

  test('200 concurrent misses for one scope set make one upstream call', async () => {
    const { broker, upstream } = await setup();
    let release!: () => void;
    upstream.gate = new Promise((resolve) => (release = resolve));
    const pending = Array.from({ length: 200 }, () => broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') }));
    await new Promise((resolve) => setImmediate(resolve));
    release();
    const results = await Promise.all(pending);
    assert.equal(upstream.refreshCalls.length, 1);
    assert.equal(new Set(results.map((r) => r.accessToken.reveal())).size, 1);
  });

  test('a scope the account did not grant is refused, naming it and the login that grants the union', async () => {
    const { broker, upstream } = await setup();
    await assert.rejects(
      broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery,devstorage.read_only') }),
      (error: unknown) => {
        assert.ok(error instanceof ScopeNotGrantedError, 'error instanceof ScopeNotGrantedError');
        assert.equal(error.httpStatus, 403);
        assert.match(error.message, /has not granted devstorage\.read_only/);
        assert.match(error.hint ?? '', /tokend login --client-secrets \/home\/alice\/client_secrets\.json --scopes bigquery,cloud-platform,devstorage\.read_only/);
        assert.deepEqual(error.details?.missing, ['https://www.googleapis.com/auth/devstorage.read_only']);
        return true;
      },
    );
    assert.equal(upstream.refreshCalls.length, 0, 'nothing is asked upstream for an ungranted scope');
  });

  test('unknown accounts and an empty broker say how to log in', async () => {
    const { broker } = await setup();
    await assert.rejects(broker.getToken({ account: 'bob@example.com' }), /not logged in as bob@example.com/);
    const empty = new Broker({
      accounts: new AccountRegistry(new MemoryStore(), silentLogger()),
      upstream: new FakeUpstream(),
      clock: new ManualClock(),
      logger: silentLogger(),
    });
    await assert.rejects(empty.getToken({ account: 'default' }), (error: unknown) => error instanceof NotLoggedInError && /tokend login/.test(error.hint ?? ''));
  });
});

describe('broker: freshness', () => {
  test('recently used tokens are refreshed in the background; callers never get 300 s or less', async () => {
    const { broker, upstream, clock } = await setup();
    const scopes = ScopeSet.parse('bigquery');
    let minimum = Infinity;
    // Three hours of a caller asking every 30 s, as a client library would.
    for (let elapsed = 0; elapsed < 3 * 3600_000; elapsed += 30_000) {
      const token = await broker.getToken({ account: 'default', scopes });
      minimum = Math.min(minimum, token.expiresIn);
      if (elapsed > 0) assert.notEqual(token.cache, 'miss', `a caller waited for a refresh at ${elapsed} ms`);
      clock.advance(30_000);
      await broker.idle();
    }
    assert.ok(minimum > 300, `a token with ${minimum} s left was served`);
    // 3 h of 1 h tokens refreshed at 75 % of their life: the first miss plus about four refreshes.
    assert.ok(upstream.refreshCalls.length >= 4 && upstream.refreshCalls.length <= 6, `${upstream.refreshCalls.length} refreshes`);
  });

  /** 10 accounts × 20 scope sets fetched at the same moment, then an hour a second at a time: renewals per second. */
  async function renewalsPerSecond(policy: Partial<FreshnessPolicy> = {}): Promise<number[]> {
    const clock = new ManualClock();
    const upstream = new FakeUpstream();
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const broker = new Broker({ accounts: new AccountRegistry(new MemoryStore(), silentLogger()), upstream, clock, logger: silentLogger(), random, policy });
    const api = ['bigquery', 'cloud-platform', 'devstorage.read_only'];
    const sets = [1, 2, 3, 4, 5, 6, 7].flatMap((mask) => ['', 'openid', 'email'].map((identity) => [...api.filter((_, bit) => mask & (1 << bit)), identity].filter(Boolean).join(',')));
    for (let i = 0; i < 10; i++) {
      const email = `user${i}@example.com`;
      await broker.adoptConsent({ email, refreshToken: new Secret(`refresh-${i}`), granted: ScopeSet.parse('bigquery,cloud-platform,devstorage.read_only,openid,email'), client: fakeClient, clientFile: undefined });
      for (const set of sets.slice(0, 20)) await broker.getToken({ account: email, scopes: ScopeSet.parse(set) });
    }
    assert.equal(upstream.refreshCalls.length, 200, 'the first fetch of 10 accounts × 20 sets');
    const perSecond: number[] = [];
    for (let second = 0; second < 3600; second++) {
      const before = upstream.refreshCalls.length;
      clock.advance(1_000);
      await broker.idle();
      perSecond.push(upstream.refreshCalls.length - before);
    }
    await broker.stop();
    // Each is renewed before it would stop being served.
    const beforeThreshold = perSecond.slice(0, 3600 - defaultFreshnessPolicy.minServeSeconds).reduce((sum, count) => sum + count, 0);
    assert.ok(beforeThreshold >= 200, `${beforeThreshold} renewals before the serve threshold`);
    return perSecond;
  }
  const busySeconds = (perSecond: number[]) => perSecond.filter((count) => count > 0).length;

  test('tokens fetched together are renewed spread out over a tenth of their life, not in a burst', async () => {
    const perSecond = await renewalsPerSecond();
    assert.ok(busySeconds(perSecond) >= 100, `spread over ${busySeconds(perSecond)} seconds`);
    assert.ok(Math.max(...perSecond) <= defaultFreshnessPolicy.maxBackgroundRefreshesPerSecond, `at most the bound in any second: ${Math.max(...perSecond)}`);
  });

  test('without jitter, the per-second bound alone holds 200 renewals due at once to 10 a second', async () => {
    const perSecond = await renewalsPerSecond({ backgroundJitterFraction: 0 });
    assert.equal(Math.max(...perSecond), 10);
    assert.ok(busySeconds(perSecond) >= 20, `spread over ${busySeconds(perSecond)} seconds`);
  });

  test('an entry nobody used for the active window is not kept fresh', async () => {
    const { broker, upstream, clock } = await setup({ activeWindowMs: 10 * 60_000 });
    await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    clock.advance(5 * 3600_000);
    await broker.idle();
    assert.equal(upstream.refreshCalls.length, 1);
  });

  test('a prefetched set (configured) is kept fresh with nobody asking, so the first call of the day is a hit', async () => {
    const { broker, upstream, clock } = await setup({ activeWindowMs: 10 * 60_000 });
    await broker.prefetch('default', ScopeSet.parse('bigquery'));
    for (let hour = 0; hour < 10; hour++) {
      clock.advance(3600_000);
      await broker.idle();
    }
    assert.ok(upstream.refreshCalls.length >= 10, `renewed in the background: ${upstream.refreshCalls.length} refreshes`);
    const first = await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    assert.equal(first.cache, 'hit');
    assert.ok(first.expiresIn > 300, `with life left: ${first.expiresIn} s`);
  });

  test('upstream down: the cached token is served until it expires, then a clear error', async () => {
    const { broker, upstream, clock } = await setup();
    const scopes = ScopeSet.parse('bigquery');
    const first = await broker.getToken({ account: 'default', scopes });
    upstream.down = true;
    clock.advance(3400_000); // 200 s left: normally a refresh
    const stale = await broker.getToken({ account: 'default', scopes });
    assert.equal(stale.cache, 'stale');
    assert.equal(stale.accessToken.reveal(), first.accessToken.reveal());
    assert.equal(stale.expiresIn, 200);
    clock.advance(201_000);
    await broker.idle();
    await assert.rejects(broker.getToken({ account: 'default', scopes }), (error: unknown) => {
      assert.ok(error instanceof UpstreamUnavailableError, 'error instanceof UpstreamUnavailableError');
      assert.match(error.message, /tokens cannot be refreshed right now/);
      return true;
    });
    upstream.down = false;
    clock.advance(60_000);
    const recovered = await broker.getToken({ account: 'default', scopes });
    assert.equal(recovered.cache, 'miss');
    assert.equal(recovered.expiresIn, 3600);
  });

  test('after a failure, callers wait out a cool-down instead of each going upstream', async () => {
    const { broker, upstream } = await setup();
    upstream.down = true;
    const scopes = ScopeSet.parse('bigquery');
    await assert.rejects(broker.getToken({ account: 'default', scopes }), UpstreamUnavailableError);
    await assert.rejects(broker.getToken({ account: 'default', scopes }), UpstreamUnavailableError);
    assert.equal(upstream.refreshCalls.length, 1);
  });
});

describe('broker: grants', () => {
  for (const fault of ['invalid_grant', 'invalid_rapt'] as const) {
    test(`${fault}: the account needs consent again, callers are told, upstream is not asked again`, async () => {
      const { broker, upstream, store } = await setup();
      upstream.faults.push(fault);
      await assert.rejects(broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') }), (error: unknown) => {
        assert.ok(error instanceof ConsentRequiredError, 'error instanceof ConsentRequiredError');
        assert.match(error.message, fault === 'invalid_rapt' ? /session-control policy/ : /expired or was revoked/);
        assert.match(error.hint ?? '', /tokend login --client-secrets/);
        return true;
      });
      await assert.rejects(broker.getToken({ account: 'default', scopes: ScopeSet.parse('cloud-platform') }), ConsentRequiredError);
      assert.equal(upstream.refreshCalls.length, 1);
      assert.equal(broker.status().accounts[0]?.health.state, 'consent_required');
      const { service, account } = accountEntry(EMAIL);
      assert.match((await store.getPassword(service, account)) ?? '', /"consent_required"/, 'the mark survives a restart');
    });
  }

  test('a rotated refresh token is stored before the access token is served', async () => {
    const { broker, upstream, store } = await setup();
    upstream.rotate = true;
    const { service, account } = accountEntry(EMAIL);
    const originalSet = store.setPassword.bind(store);
    // The store's write is held by a latch: no token may be served while it is pending.
    let releaseWrite!: () => void;
    const writeHeld = new Promise<void>((resolve) => (releaseWrite = resolve));
    let writeStarted = false;
    store.setPassword = async (s, a, p) => {
      writeStarted = true;
      await writeHeld;
      await originalSet(s, a, p);
    };
    let served = false;
    const pending = broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') }).then((token) => {
      served = true;
      return token;
    });
    const deadline = Date.now() + 5_000;
    while (!writeStarted && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    assert.ok(writeStarted, 'the rotated refresh token is being stored');
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(served, false, 'no access token is served before the rotated refresh token is stored');
    releaseWrite();
    await pending;
    assert.match((await store.getPassword(service, account)) ?? '', /refresh-rotated-1/);
    await broker.getToken({ account: 'default', scopes: ScopeSet.parse('cloud-platform') });
    assert.equal(upstream.refreshCalls[1]?.refreshToken, 'refresh-rotated-1', 'the next refresh uses the rotated token');
  });

  test('regression: a rotation the store refuses is not paid for again: retries go nowhere upstream, and the first retry after the store is back stores it and serves the token', async () => {
    const { broker, upstream, store } = await setup();
    upstream.rotate = true;
    const { service, account } = accountEntry(EMAIL);
    const originalSet = store.setPassword.bind(store);
    let storeWorks = false;
    store.setPassword = async (s, a, p) => {
      if (!storeWorks) throw new StoreUnavailableError('the keyring is locked', { hint: 'unlock it' });
      await originalSet(s, a, p);
    };
    const ask = (scopes: string) => broker.getToken({ account: 'default', scopes: ScopeSet.parse(scopes) });
    await assert.rejects(ask('bigquery'), StoreUnavailableError);
    assert.equal(upstream.refreshCalls.length, 1);
    for (let i = 0; i < 5; i++) await assert.rejects(ask('bigquery'), StoreUnavailableError);
    await assert.rejects(ask('cloud-platform'), StoreUnavailableError, 'another set waits for the same rotation');
    assert.equal(upstream.refreshCalls.length, 1, 'no retry went upstream');
    storeWorks = true;
    const served = await ask('bigquery');
    assert.equal(served.cache, 'hit', 'the token the rotation brought is served once stored');
    assert.equal(upstream.refreshCalls.length, 1);
    assert.match((await store.getPassword(service, account)) ?? '', /refresh-rotated-1/);
  });

  test('an answer wider than asked is refused, never served', async () => {
    const { broker, upstream } = await setup();
    upstream.answerScope = `${BQ} ${CP}`;
    await assert.rejects(broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') }), /with more than asked \(cloud-platform\)/);
    upstream.answerScope = undefined;
    const token = await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    assert.deepEqual(token.scopes.scopes, [BQ]);
  });

  test('an answer narrower than asked is refused, never served as if it were what was asked', async () => {
    const { broker, upstream } = await setup();
    upstream.answerScope = BQ;
    await assert.rejects(broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery,cloud-platform') }), /refreshed alice@example\.com without cloud-platform/);
    assert.equal(broker.status().accounts[0]!.tokens.length, 0, 'nothing was cached');
  });

  test('an unreadable record is reported in status and can be deleted with logout --no-revoke', async () => {
    const { store, upstream, clock } = await setup();
    await store.setPassword('tokend', 'broken@example.com', '{not json');
    const accounts = new AccountRegistry(store, silentLogger());
    await accounts.load();
    const broker = new Broker({ accounts, upstream, clock, logger: silentLogger() });
    assert.deepEqual(broker.status().unreadableRecords.map((r) => r.entry), ['broken@example.com']);
    assert.equal(broker.status().accounts.length, 1, 'the readable account still loads');
    await broker.logout('broken@example.com', { revoke: false });
    assert.equal(await store.getPassword('tokend', 'broken@example.com'), null);
    assert.deepEqual(broker.status().unreadableRecords, []);
  });

  test('regression: a refresh that fails during logout does not write the record back', async () => {
    const { broker, upstream, store } = await setup();
    // A slow store: the consent-required mark is being written while logout deletes the record.
    const set = store.setPassword.bind(store);
    const del = store.deletePassword.bind(store);
    let markWriteStarted!: () => void;
    const markWriting = new Promise<void>((resolve) => (markWriteStarted = resolve));
    let deleted!: () => void;
    const deleteDone = new Promise<void>((resolve) => (deleted = resolve));
    const ticks = async (n: number) => {
      for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
    };
    store.setPassword = async (...args) => {
      markWriteStarted();
      await Promise.race([deleteDone, ticks(20)]);
      return set(...args);
    };
    store.deletePassword = async (...args) => {
      await Promise.race([markWriting, ticks(20)]);
      const result = await del(...args);
      deleted();
      return result;
    };
    let release!: () => void;
    upstream.revokeGate = new Promise((resolve) => (release = resolve));
    upstream.faults.push('invalid_grant'); // the grant is already dying upstream
    const logout = broker.logout('default', { revoke: true });
    const token = broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    token.catch(() => undefined);
    await new Promise((resolve) => setImmediate(resolve));
    release();
    assert.deepEqual(await logout, { email: EMAIL, revoked: true });
    await assert.rejects(token);
    const { service, account } = accountEntry(EMAIL);
    assert.equal(await store.getPassword(service, account), null, 'the record stays deleted');
    assert.deepEqual(broker.status().accounts, []);
  });

  for (const answer of ['plain', 'rotated', 'invalid_grant'] as const) {
    test(`regression: a refresh answered (${answer}) during a new consent does not overwrite it`, async () => {
      const { broker, upstream, store } = await setup();
      let release!: () => void;
      upstream.gate = new Promise((resolve) => (release = resolve));
      if (answer === 'rotated') upstream.rotate = true;
      else upstream.faults.push('invalid_grant');
      const token = broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
      await new Promise((resolve) => setImmediate(resolve));
      await broker.adoptConsent({
        email: EMAIL,
        refreshToken: new Secret('refresh-second'),
        granted: ScopeSet.of([BQ, CP]),
        client: fakeClient,
        clientFile: undefined,
      });
      upstream.faults.length = 0;
      release();
      upstream.gate = undefined;
      const issued = await token; // retried on the new consent
      assert.equal(issued.account, EMAIL);
      assert.equal(upstream.refreshCalls.at(-1)?.refreshToken, 'refresh-second');
      assert.equal(issued.accessToken.reveal(), `access-${upstream.refreshCalls.length}`, 'the token served comes from the new grant');
      const { service, account } = accountEntry(EMAIL);
      const record = JSON.parse((await store.getPassword(service, account))!);
      assert.equal(record.health.state, 'ok');
      assert.match(record.refresh_token, answer === 'rotated' ? /^refresh-rotated-\d+$/ : /^refresh-second$/);
      assert.notEqual(record.refresh_token, 'refresh-rotated-1', 'the old grant\'s rotated token is not stored');
      assert.equal(broker.status().accounts[0]?.health.state, 'ok');
    });
  }

  test('a token\'s life counts from when its refresh was sent: a slow answer does not lengthen it', async () => {
    const { broker, upstream, clock } = await setup();
    let release!: () => void;
    upstream.gate = new Promise((resolve) => (release = resolve));
    const pending = broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    await new Promise((resolve) => setImmediate(resolve));
    clock.advance(30_000); // the upstream takes 30 s to answer
    release();
    upstream.gate = undefined;
    assert.equal((await pending).expiresIn, 3600 - 30);
  });

  test('an empty scope list is refused, not sent upstream as "everything"', async () => {
    const { broker, upstream } = await setup();
    await assert.rejects(broker.getToken({ account: 'default', scopes: ScopeSet.of([]) }), /no scopes asked for/);
    assert.throws(() => ScopeSet.parse(' , '), /no scopes given/);
    assert.equal(upstream.refreshCalls.length, 0);
  });

  test('a caller with a valid cached token is not held by a hanging refresh', async () => {
    const { broker, upstream, clock } = await setup();
    const scopes = ScopeSet.parse('bigquery');
    const first = await broker.getToken({ account: 'default', scopes });
    upstream.gate = new Promise(() => undefined); // never answers
    clock.advance(3400_000); // 200 s left; the background refresh starts and hangs
    const timers = clock.pendingTimers();
    const pending = broker.getToken({ account: 'default', scopes });
    while (clock.pendingTimers() === timers) await new Promise((resolve) => setImmediate(resolve));
    clock.advance(broker.policy.requestWaitMs);
    const served = await pending;
    assert.equal(served.cache, 'stale');
    assert.equal(served.accessToken.reveal(), first.accessToken.reveal());
  });

  test('re-consent replaces the refresh token without revoking and drops cached tokens', async () => {
    const { broker, upstream } = await setup();
    await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    await broker.adoptConsent({
      email: EMAIL,
      refreshToken: new Secret('refresh-second'),
      granted: ScopeSet.of([BQ]),
      client: fakeClient,
      clientFile: undefined,
    });
    assert.equal(upstream.revokeCalls.length, 0);
    const token = await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    assert.equal(token.cache, 'miss');
    assert.equal(upstream.refreshCalls[1]?.refreshToken, 'refresh-second');
    await assert.rejects(broker.getToken({ account: 'default', scopes: ScopeSet.parse('cloud-platform') }), ScopeNotGrantedError);
  });

  test('logout revokes upstream, deletes the record, and later requests are refused', async () => {
    const { broker, upstream, store } = await setup();
    await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    const result = await broker.logout('default', { revoke: true });
    assert.deepEqual(result, { email: EMAIL, revoked: true });
    assert.deepEqual(upstream.revokeCalls, ['refresh-original']);
    const { service, account } = accountEntry(EMAIL);
    assert.equal(await store.getPassword(service, account), null);
    await assert.rejects(broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') }), NotLoggedInError);
  });

  test('accounts load from the store after a restart', async () => {
    const { store, upstream, clock } = await setup();
    const accounts = new AccountRegistry(store, silentLogger());
    await accounts.load();
    const restarted = new Broker({ accounts, upstream, clock, logger: silentLogger() });
    const token = await restarted.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    assert.equal(token.account, EMAIL);
    assert.equal(upstream.refreshCalls[0]?.refreshToken, 'refresh-original');
  });
});

describe('broker: the default account', () => {
  const consent = (broker: Broker, email: string) =>
    broker.adoptConsent({ email, refreshToken: new Secret(`refresh-${email}`), granted: ScopeSet.of([BQ]), client: fakeClient, clientFile: undefined });

  test('regression: a login never makes an account the default by itself, nor changes the default', async () => {
    const { broker, clock } = await setup(); // alice, made the default
    clock.advance(1000);
    await consent(broker, 'mallory@evil.example');
    assert.equal((await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') })).account, EMAIL);
    await consent(broker, EMAIL); // a re-consent keeps the choice
    assert.equal(broker.registry.defaultAccount()?.email, EMAIL);

    const empty = new Broker({ accounts: new AccountRegistry(new MemoryStore(), silentLogger()), upstream: new FakeUpstream(), clock, logger: silentLogger() });
    await consent(empty, 'mallory@evil.example');
    await assert.rejects(empty.getToken({ account: 'default' }), (error: unknown) => {
      assert.ok(error instanceof NotLoggedInError, 'error instanceof NotLoggedInError');
      assert.match(error.message, /no default account: tokend holds mallory@evil\.example/);
      assert.match(error.hint ?? '', /tokend default mallory@evil\.example/);
      return true;
    });
  });

  test('the choice is stored with the record; logging out the default promotes no other account', async () => {
    const { broker, clock, store } = await setup();
    clock.advance(1000);
    await consent(broker, 'bob@example.com');
    await broker.setDefault('bob@example.com');
    const reloaded = new AccountRegistry(store, silentLogger());
    await reloaded.load();
    assert.equal(reloaded.defaultAccount()?.email, 'bob@example.com');
    await broker.logout('bob@example.com', { revoke: false });
    assert.equal(broker.registry.defaultAccount(), undefined);
    await assert.rejects(broker.getToken({ account: 'default' }), /no default account/);
  });

  test('records from before explicit defaults: the oldest stays the default, written down once', async () => {
    const store = new MemoryStore();
    const { service } = accountEntry(EMAIL);
    for (const [email, created] of [['bob@example.com', '2026-02-01T00:00:00.000Z'], [EMAIL, '2026-01-01T00:00:00.000Z']] as const) {
      const record = { version: 1, email, refresh_token: `r-${email}`, scopes: [BQ], client: clientToStored(fakeClient), health: { state: 'ok' }, created_at: created, updated_at: created };
      await store.setPassword(service, accountEntry(email).account, JSON.stringify(record));
    }
    const accounts = new AccountRegistry(store, silentLogger());
    await accounts.load();
    assert.equal(accounts.defaultAccount()?.email, EMAIL);
    const stored = JSON.parse((await store.getPassword(service, accountEntry('bob@example.com').account))!);
    assert.equal(stored.default_since, null);
    await accounts.remove(accounts.find(EMAIL)!);
    const again = new AccountRegistry(store, silentLogger());
    await again.load();
    assert.equal(again.defaultAccount(), undefined, 'bob is not promoted after a restart');
  });
});

describe('broker: the upstream budget', () => {
  // Twelve granted scopes give thousands of distinct subsets for a runaway caller to cycle through.
  const MANY = Array.from({ length: 12 }, (_, i) => `https://www.googleapis.com/auth/scope-${i}`);
  const subset = (n: number) => ScopeSet.of(MANY.filter((_, i) => ((n + 1) >> i) & 1));

  async function manyScopes(upstreamBudget: Partial<UpstreamBudgetPolicy> = {}) {
    const ctx = await setup({}, upstreamBudget);
    await ctx.broker.adoptConsent({ email: EMAIL, refreshToken: new Secret('r'), granted: ScopeSet.of(MANY), client: fakeClient, clientFile: undefined });
    ctx.upstream.refreshCalls.length = 0;
    return ctx;
  }

  test('regression: a caller cycling through scope sets gets at most the burst, then a clear refusal', async () => {
    const { broker, upstream, clock } = await manyScopes();
    const results = [];
    for (let n = 0; n < 3000; n++) {
      results.push(await broker.getToken({ account: EMAIL, scopes: subset(n) }).then(() => 'ok', (error: unknown) => error));
    }
    assert.equal(upstream.refreshCalls.length, 30, 'the burst, and nothing more in the same instant');
    const refused = results.filter((r) => r !== 'ok');
    assert.equal(refused.length, 2970);
    const first = refused[0] as UpstreamThrottledError;
    assert.ok(first instanceof UpstreamThrottledError, 'first instanceof UpstreamThrottledError');
    assert.match(first.message, /at most 30 times a minute per account/);
    assert.match(first.hint ?? '', /reuse one set/);
    clock.advance(60_000);
    for (let n = 3000; n < 3040; n++) await broker.getToken({ account: EMAIL, scopes: subset(n) }).catch(() => undefined);
    assert.equal(upstream.refreshCalls.length, 60, 'a minute later, one minute\'s worth more');
  });

  test('regression: after an outage the whole account pauses, not each scope set on its own', async () => {
    const { broker, upstream, clock } = await manyScopes();
    upstream.down = true;
    for (let n = 0; n < 100; n++) await broker.getToken({ account: EMAIL, scopes: subset(n) }).catch(() => undefined);
    assert.equal(upstream.refreshCalls.length, 1, '100 new sets during an outage: one upstream call');
    await assert.rejects(broker.getToken({ account: EMAIL, scopes: subset(500) }), /holding off the OAuth server for alice@example\.com/);
    upstream.down = false;
    clock.advance(5_001);
    await broker.getToken({ account: EMAIL, scopes: subset(501) });
    assert.equal(upstream.refreshCalls.length, 2);
  });

  test('Retry-After from the server sets the pause', async () => {
    const { broker, upstream, clock } = await manyScopes();
    upstream.retryAfterMs = 60_000;
    upstream.down = true;
    await assert.rejects(broker.getToken({ account: EMAIL, scopes: subset(0) }));
    upstream.down = false;
    clock.advance(30_000);
    await assert.rejects(broker.getToken({ account: EMAIL, scopes: subset(1) }), /for 30 s more/);
    clock.advance(30_001);
    await broker.getToken({ account: EMAIL, scopes: subset(2) });
  });

  test('at most 32 scope sets are cached per account; evicted ones are not kept fresh', async () => {
    const { broker, upstream, clock } = await manyScopes();
    for (let n = 0; n < 40; n++) {
      await broker.getToken({ account: EMAIL, scopes: subset(n) }).catch(() => undefined);
      clock.advance(2_000); // within the budget
    }
    const tokens = broker.status().accounts.find((a) => a.email === EMAIL)!.tokens;
    assert.equal(tokens.length, 32);
    assert.equal(tokens.filter((t) => t.backgroundRefresh).length, 32, 'only cached sets have a refresh timer');
    const before = upstream.refreshCalls.length;
    clock.advance(50 * 60_000); // past every background refresh
    await broker.idle();
    assert.ok(upstream.refreshCalls.length - before <= 32, 'evicted sets are not fetched again in the background');
  });

  test('regression: a runaway caller cannot starve a program whose set is in use: it is renewed with the bucket empty', async () => {
    // A bucket the runaway empties for good: 5 grants, and practically no refill.
    const { broker, upstream, clock } = await manyScopes({ burst: 5, perMinute: 0.001 });
    const steady = ScopeSet.of([MANY[0]!, MANY[1]!]);
    const first = await broker.getToken({ account: EMAIL, scopes: steady });
    await broker.getToken({ account: EMAIL, scopes: steady });
    for (let n = 10; n < 100; n++) await broker.getToken({ account: EMAIL, scopes: subset(n) }).catch(() => undefined);
    assert.equal(upstream.refreshCalls.length, 5, 'the bucket is spent');
    for (let minute = 0; minute < 50; minute++) {
      clock.advance(60_000);
      await broker.idle();
    }
    const later = await broker.getToken({ account: EMAIL, scopes: steady });
    assert.equal(later.cache, 'hit');
    assert.notEqual(later.accessToken.reveal(), first.accessToken.reveal(), 'renewed in the background');
  });

  test('eviction drops sets asked for once before a set in use, however recently', async () => {
    const { broker, clock } = await manyScopes();
    const steady = ScopeSet.of([MANY[0]!, MANY[1]!]);
    await broker.getToken({ account: EMAIL, scopes: steady });
    await broker.getToken({ account: EMAIL, scopes: steady });
    for (let n = 10; n < 60; n++) {
      await broker.getToken({ account: EMAIL, scopes: subset(n) }).catch(() => undefined);
      clock.advance(2_000);
    }
    const cached = broker.status().accounts.find((a) => a.email === EMAIL)!.tokens.map((t) => t.scopes.join(' '));
    assert.equal(cached.length, 32);
    assert.ok(cached.includes(steady.scopes.join(' ')), 'the set in use survived 50 one-off sets');
  });

});

describe('broker: what status and messages say about the upstream', () => {
  test('an outage shows in the account\'s upstream status while its health stays ok; a success after it shows too', async () => {
    const { broker, upstream, clock } = await setup();
    const before = broker.status().accounts[0]!.upstream;
    assert.deepEqual(before, { lastSuccess: null, lastFailure: null, pause: null });
    upstream.down = true;
    await assert.rejects(broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') }), /HTTP 503/);
    const during = broker.status().accounts[0]!;
    assert.equal(during.health.state, 'ok', 'an outage is not a consent problem');
    assert.equal(during.upstream.lastSuccess, null);
    assert.match(during.upstream.lastFailure?.reason ?? '', /^refreshing: the OAuth server at fake answered HTTP 503$/);
    assert.equal(during.upstream.lastFailure?.at, new Date(clock.now()).toISOString());
    assert.match(during.upstream.pause?.reason ?? '', /HTTP 503/, 'the account-wide pause is shown');
    upstream.down = false;
    clock.advance(120_000);
    await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') });
    const after = broker.status().accounts[0]!.upstream;
    assert.equal(after.lastSuccess, new Date(clock.now()).toISOString());
    assert.notEqual(after.lastFailure, null, 'the last failure is still shown, older than the success');
    assert.equal(after.pause, null);
  });

  test('logout during an outage says the revocation failed, not that tokens cannot be refreshed', async () => {
    const { broker, upstream, accounts } = await setup();
    upstream.down = true;
    const error = await broker.logout('default', { revoke: true }).catch((e: unknown) => e);
    assert.ok(error instanceof UpstreamUnavailableError, `an outage error: ${String(error)}`);
    assert.match(error.message, /the grant could not be revoked/);
    assert.doesNotMatch(error.message, /refresh/);
    assert.match(error.hint ?? '', /nothing was deleted.*tokend logout --account alice@example\.com --no-revoke/);
    assert.equal(accounts.list().length, 1, 'nothing was deleted');
    assert.match(broker.status().accounts[0]!.upstream.lastFailure?.reason ?? '', /^revoking: /);
  });

  test('a grant that died 7 days after consent names the "Testing" consent screen as the likely cause; one that died sooner does not', async () => {
    for (const [days, testing] of [[7.2, true], [3, false]] as const) {
      const { broker, upstream, clock } = await setup();
      clock.advance(days * 24 * 3600_000);
      upstream.faults.push('invalid_grant');
      const error = await broker.getToken({ account: 'default', scopes: ScopeSet.parse('bigquery') }).catch((e: unknown) => e);
      assert.ok(error instanceof ConsentRequiredError, `consent required after ${days} days: ${String(error)}`);
      assert.match(error.hint ?? '', /tokend login --client-secrets \/home\/alice\/client_secrets\.json --scopes bigquery,cloud-platform --login-hint alice@example\.com/);
      assert.equal(/"Testing" status/.test(error.hint ?? ''), testing, `after ${days} days: ${error.hint}`);
    }
  });
});

describe('broker: the audit trail', () => {
  test('a token_issued line at once for every token refreshed; cache hits counted per caller, one line per interval and at stop; never the token', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } });
    const clock = new ManualClock();
    const accounts = new AccountRegistry(new MemoryStore(), silentLogger());
    const broker = new Broker({ accounts, upstream: new FakeUpstream(), clock, logger });
    await broker.adoptConsent({ email: EMAIL, refreshToken: new Secret('refresh-original'), granted: ScopeSet.of([BQ, 'openid', 'email']), client: fakeClient, clientFile: undefined });
    const audit = () =>
      lines
        .filter((line) => line.event === 'token_issued')
        .map(({ account, scopes, cache, expires_in, caller, count, ports }) => ({ account, scopes, cache, expires_in, caller, count, ports }));
    const unix = { transport: 'unix', pid: 4242, uid: 1000 };
    const first = await broker.getToken({ account: EMAIL, scopes: ScopeSet.parse('bigquery'), caller: unix });
    assert.deepEqual(audit(), [{ account: EMAIL, scopes: [BQ], cache: 'miss', expires_in: 3600, caller: unix, count: undefined, ports: undefined }], 'the refresh is logged before it is served');

    clock.advance(10_000);
    await broker.getToken({ account: EMAIL, scopes: ScopeSet.parse('bigquery'), caller: unix });
    for (const port of [50001, 50002, 50001]) broker.serveCached({ account: EMAIL, scopes: ScopeSet.parse('bigquery'), caller: { transport: 'tcp', port } });
    assert.equal(audit().length, 1, 'hits wait for the interval');
    clock.advance(HIT_INTERVAL_MS);
    assert.deepEqual(audit().slice(1), [
      { account: EMAIL, scopes: [BQ], cache: 'hit', expires_in: 3590, caller: unix, count: 1, ports: undefined },
      { account: EMAIL, scopes: [BQ], cache: 'hit', expires_in: 3590, caller: { transport: 'tcp' }, count: 3, ports: [50001, 50002] },
    ]);

    broker.serveCached({ account: EMAIL, scopes: ScopeSet.parse('bigquery'), caller: unix });
    await broker.stop();
    assert.deepEqual(audit().slice(3), [{ account: EMAIL, scopes: [BQ], cache: 'hit', expires_in: 3580, caller: unix, count: 1, ports: undefined }], 'stop writes what is counted');
    assert.ok(!JSON.stringify(lines).includes(first.accessToken.reveal()), 'the token is never logged');
  });
});
