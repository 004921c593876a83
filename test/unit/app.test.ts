import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AccountRegistry } from '../../src/broker/accounts.js';
import { Broker } from '../../src/broker/broker.js';
import { LoginManager } from '../../src/broker/login.js';
import { ProjectNumbers } from '../../src/broker/project-number.js';
import { ScopeSet } from '../../src/broker/scopes.js';
import { ManualClock } from '../../src/clock.js';
import { UpstreamRejectedError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Secret } from '../../src/secret.js';
import { buildApp } from '../../src/server/app.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { fakeClient, FakeUpstream } from '../helpers/fake-upstream.js';

const BQ = 'https://www.googleapis.com/auth/bigquery';
const CP = 'https://www.googleapis.com/auth/cloud-platform';
const FLAVOR = { 'metadata-flavor': 'Google' };
const TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token';

async function setup({ management = true, loggedIn = true } = {}) {
  const clock = new ManualClock();
  const upstream = new FakeUpstream();
  const accounts = new AccountRegistry(new MemoryStore(), silentLogger());
  const broker = new Broker({ accounts, upstream, clock, logger: silentLogger() });
  if (loggedIn) {
    await broker.adoptConsent({
      email: 'alice@example.com',
      refreshToken: new Secret('refresh-original'),
      granted: ScopeSet.of([BQ, CP, 'openid', 'email']),
      client: fakeClient,
      clientFile: undefined,
    });
    await broker.setDefault('alice@example.com');
  }
  const logins = new LoginManager({ broker, upstream, clock, logger: silentLogger() });
  const info = {
    version: '0.0.0-test',
    pid: 1,
    socket: '/tmp/test.sock',
    startedAt: clock.now(),
    store: { kind: 'memory', description: 'memory', reason: 'test' },
    configFile: '/tmp/config.json',
  };
  const directory = {
    refuse: false,
    projectNumber(projectId: string) {
      return directory.refuse
        ? Promise.reject(new UpstreamRejectedError(`the Resource Manager does not show project ${projectId} to this account (HTTP 403)`, { hint: 'x' }))
        : Promise.resolve('123456789012');
    },
  };
  const projectNumbers = new ProjectNumbers({ configured: undefined, broker, directory, clock, logger: silentLogger(), howToSet: 'put "projectNumber" in the config' });
  const app = buildApp({
    broker,
    logger: silentLogger(),
    metadata: { projectNumbers, zone: 'europe-west1-b' },
    ...(management
      ? { management: { logins, info, now: () => clock.now(), migrateStore: () => Promise.reject(new Error('not in these tests')), projectNumber: () => projectNumbers.status(), probeUpstream: () => Promise.resolve([]) } }
      : {}),
  });
  return { app, upstream, clock, broker, directory };
}

describe('metadata routes', () => {
  test('token: the metadata server shape, exact JSON type, flavor header, no caching', async () => {
    const { app, upstream } = await setup();
    const res = await app.inject({ url: `${TOKEN_PATH}?scopes=${encodeURIComponent(BQ)}`, headers: FLAVOR });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(res.headers['metadata-flavor'], 'Google');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.deepEqual(res.json(), { access_token: 'access-1', expires_in: 3600, token_type: 'Bearer' });
    assert.deepEqual(upstream.refreshCalls[0]?.scopes, [BQ]);
  });

  test('scopes accept short names and the email works as an alias of default', async () => {
    const { app, upstream } = await setup();
    const res = await app.inject({
      url: '/computeMetadata/v1/instance/service-accounts/alice%40example.com/token?scopes=bigquery,cloud-platform',
      headers: FLAVOR,
    });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(upstream.refreshCalls[0]?.scopes, [BQ, CP]);
  });

  test('without Metadata-Flavor, or with X-Forwarded-For: 403, still flagged Google', async () => {
    const { app, upstream } = await setup();
    const missing = await app.inject({ url: TOKEN_PATH });
    assert.equal(missing.statusCode, 403);
    assert.equal(missing.headers['metadata-flavor'], 'Google');
    assert.equal(missing.json().error.code, 'missing_metadata_flavor');
    const proxied = await app.inject({ url: TOKEN_PATH, headers: { ...FLAVOR, 'x-forwarded-for': '10.0.0.1' } });
    assert.equal(proxied.statusCode, 403);
    assert.equal(proxied.json().error.code, 'proxied_request');
    assert.equal(upstream.refreshCalls.length, 0);
  });

  test('regression: every header a proxy adds is refused on the Unix socket too, not only X-Forwarded-For', async () => {
    const { app, upstream } = await setup();
    for (const [name, value] of [
      ['forwarded', 'for=10.0.0.1;host=metadata.google.internal'],
      ['via', '1.1 squid'],
      ['x-forwarded-host', 'metadata.google.internal'],
      ['x-forwarded-proto', 'http'],
      ['x-real-ip', '10.0.0.1'],
    ] as const) {
      const proxied = await app.inject({ url: TOKEN_PATH, headers: { ...FLAVOR, [name]: value } });
      assert.equal(proxied.statusCode, 403, name);
      assert.equal(proxied.json().error.code, 'proxied_request', name);
    }
    assert.match((await app.inject({ url: TOKEN_PATH, headers: { ...FLAVOR, 'x-real-ip': '10.0.0.1' } })).json().error.message, /\(X-Real-IP\)/);
    assert.equal(upstream.refreshCalls.length, 0);
  });

  test('a wrong Metadata-Flavor value is refused like a missing one, as the real server does', async () => {
    const { app, upstream } = await setup();
    for (const value of ['google', 'GOOGLE', 'Googl', 'Google ', 'true', '']) {
      const res = await app.inject({ url: TOKEN_PATH, headers: { 'metadata-flavor': value } });
      assert.equal(res.statusCode, 403, `Metadata-Flavor: ${JSON.stringify(value)}`);
      assert.equal(res.json().error.code, 'missing_metadata_flavor');
    }
    assert.equal(upstream.refreshCalls.length, 0);
  });

  test('regression: a percent-encoded path does not skip the Metadata-Flavor check', async () => {
    const { app, upstream } = await setup();
    for (const url of [TOKEN_PATH.replace('/computeMetadata', '/%63omputeMetadata'), TOKEN_PATH.replace('token', '%74oken')]) {
      const res = await app.inject({ url });
      assert.equal(res.statusCode, 403, url);
      assert.equal(res.json().error.code, 'missing_metadata_flavor');
    }
    assert.equal(upstream.refreshCalls.length, 0);
  });

  test('directories asked for without their slash redirect to it', async () => {
    const { app } = await setup();
    for (const path of ['/computeMetadata/v1', '/computeMetadata/v1/instance/service-accounts', '/computeMetadata/v1/project']) {
      const res = await app.inject({ url: path, headers: FLAVOR });
      assert.equal(res.statusCode, 301, path);
      assert.equal(res.headers.location, `${path}/`);
      assert.equal(res.headers['metadata-flavor'], 'Google');
    }
  });

  test('ungranted scope: 403 naming the scope and the login command', async () => {
    const { app } = await setup();
    const res = await app.inject({ url: `${TOKEN_PATH}?scopes=devstorage.read_only`, headers: FLAVOR });
    assert.equal(res.statusCode, 403);
    const { error } = res.json();
    assert.equal(error.code, 'scope_not_granted');
    assert.match(error.message, /devstorage\.read_only/);
    assert.match(error.hint, /tokend login --client-secrets .* --scopes bigquery,cloud-platform,devstorage\.read_only/);
  });

  test('bad scopes: 400 with a clear message', async () => {
    const { app } = await setup();
    const res = await app.inject({ url: `${TOKEN_PATH}?scopes=${encodeURIComponent('no such scope!')}`, headers: FLAVOR });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, 'invalid_scope');
    const empty = await app.inject({ url: `${TOKEN_PATH}?scopes=,`, headers: FLAVOR });
    assert.equal(empty.statusCode, 400);
    assert.match(empty.json().error.message, /no scopes given/);
    const repeated = await app.inject({ url: '/tokend/v1/token?scopes=bigquery&scopes=cloud-platform' });
    assert.equal(repeated.statusCode, 400);
    assert.equal(repeated.json().error.code, 'bad_request');
    const badUrl = await app.inject({ url: '/computeMetadata/v1/instance/service-accounts/%ZZ/token', headers: FLAVOR });
    assert.equal(badUrl.statusCode, 400);
    assert.equal(badUrl.headers['content-type'], 'application/json');
    assert.equal(badUrl.headers['metadata-flavor'], 'Google');
    assert.deepEqual(badUrl.json(), { error: { code: 'bad_request', message: 'the request URL is malformed', hint: 'see docs/metadata.md for the paths tokend serves' } });
  });

  test('the ping, the detection paths and the account info answer as a VM does', async () => {
    const { app } = await setup();
    const ping = await app.inject({ url: '/' });
    assert.equal(ping.statusCode, 200);
    assert.equal(ping.headers['metadata-flavor'], 'Google');
    const instance = await app.inject({ url: '/computeMetadata/v1/instance', headers: FLAVOR });
    assert.equal(instance.statusCode, 200);
    const email = await app.inject({ url: '/computeMetadata/v1/instance/service-accounts/default/email', headers: FLAVOR });
    assert.equal(email.body, 'alice@example.com');
    assert.equal(email.headers['content-type'], 'application/text');
    const scopes = await app.inject({ url: '/computeMetadata/v1/instance/service-accounts/default/scopes', headers: FLAVOR });
    assert.equal(scopes.body, `${BQ}\n${CP}\n`);
    const recursive = await app.inject({ url: '/computeMetadata/v1/instance/service-accounts/default/?recursive=true', headers: FLAVOR });
    assert.equal(recursive.headers['content-type'], 'application/json');
    assert.deepEqual(recursive.json(), { aliases: ['default'], email: 'alice@example.com', scopes: [BQ, CP] });
    const project = await app.inject({ url: '/computeMetadata/v1/project/project-id', headers: FLAVOR });
    assert.equal(project.body, 'fake-project');
    const universe = await app.inject({ url: '/computeMetadata/v1/universe/universe-domain', headers: FLAVOR });
    assert.equal(universe.body, 'googleapis.com');
    const redirect = await app.inject({ url: '/computeMetadata/v1/instance/service-accounts/default', headers: FLAVOR });
    assert.equal(redirect.statusCode, 301);
    assert.equal(redirect.headers['metadata-flavor'], 'Google');
  });

  test('project/numeric-project-id and instance/zone: the number looked up for the default account\'s project', async () => {
    const { app } = await setup();
    const number = await app.inject({ url: '/computeMetadata/v1/project/numeric-project-id', headers: FLAVOR });
    assert.equal(number.statusCode, 200);
    assert.equal(number.body, '123456789012');
    assert.equal(number.headers['content-type'], 'application/text');
    const zone = await app.inject({ url: '/computeMetadata/v1/instance/zone', headers: FLAVOR });
    assert.equal(zone.body, 'projects/123456789012/zones/europe-west1-b');
    assert.deepEqual((await app.inject({ url: '/tokend/v1/status' })).json().projectNumber, { state: 'found', projectId: 'fake-project', projectNumber: '123456789012' });
  });

  test('a project number that cannot be looked up: a 404 that says why and how to set it', async () => {
    const { app, directory } = await setup();
    directory.refuse = true;
    const res = await app.inject({ url: '/computeMetadata/v1/project/numeric-project-id', headers: FLAVOR });
    assert.equal(res.statusCode, 404);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.match(res.json().error.message, /^the project number is not known: looking it up failed: the Resource Manager does not show project fake-project/);
    assert.equal(res.json().error.hint, 'put "projectNumber" in the config');
    assert.equal((await app.inject({ url: '/tokend/v1/status' })).json().projectNumber.state, 'unknown');
  });

  test('not logged in: a clear 404 that says how to log in', async () => {
    const { app } = await setup({ loggedIn: false });
    const res = await app.inject({ url: TOKEN_PATH, headers: FLAVOR });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.code, 'not_logged_in');
    assert.match(res.json().error.hint, /tokend login/);
  });

  test('an upstream library failure is a 503 whose body carries none of the failure\'s text', async () => {
    const { app, upstream } = await setup();
    upstream.refresh = () => Promise.reject(new Error('internal detail: refresh-original'));
    const res = await app.inject({ url: TOKEN_PATH, headers: FLAVOR });
    assert.equal(res.statusCode, 503);
    assert.doesNotMatch(res.body, /internal detail|refresh-original/);
  });

  test('unexpected failures become a generic 500 without internals', async () => {
    const { broker } = await setup();
    (broker as unknown as { getToken: () => never }).getToken = () => {
      throw new Error('boom with secret refresh-original');
    };
    const app2 = buildApp({ broker, logger: silentLogger() });
    const res2 = await app2.inject({ url: TOKEN_PATH, headers: FLAVOR });
    assert.equal(res2.statusCode, 500);
    assert.deepEqual(res2.json(), { error: { code: 'internal', message: 'internal error', hint: 'the daemon log (the stderr of `tokend serve`) says what failed' } });
  });
});

describe('management routes', () => {
  test('are absent from an app built without them (the TCP listener)', async () => {
    const { app } = await setup({ management: false });
    const res = await app.inject({ url: '/tokend/v1/status' });
    assert.equal(res.statusCode, 404);
    const logout = await app.inject({ method: 'POST', url: '/tokend/v1/logout', payload: {} });
    assert.equal(logout.statusCode, 404);
  });

  test('status lists accounts, granted scopes, health and cached tokens without secrets', async () => {
    const { app, clock } = await setup();
    await app.inject({ url: `${TOKEN_PATH}?scopes=bigquery`, headers: FLAVOR });
    clock.advance(60_000);
    const res = await app.inject({ url: '/tokend/v1/status' });
    assert.equal(res.statusCode, 200);
    const status = res.json();
    assert.equal(status.accounts[0].email, 'alice@example.com');
    assert.equal(status.accounts[0].default, true);
    assert.deepEqual(status.accounts[0].health, { state: 'ok' });
    assert.deepEqual(status.accounts[0].tokens[0].scopes, [BQ]);
    assert.equal(status.accounts[0].tokens[0].expiresIn, 3540);
    assert.doesNotMatch(res.body, /access-1|refresh-original|fake-secret/);
  });

  test('login requests are validated before anything starts', async () => {
    const { app } = await setup();
    const noBody = await app.inject({ method: 'POST', url: '/tokend/v1/logins', payload: {} });
    assert.equal(noBody.statusCode, 400);
    assert.match(noBody.json().error.message, /clientSecrets/);
    const web = await app.inject({ method: 'POST', url: '/tokend/v1/logins', payload: { clientSecrets: '{"web":{}}' } });
    assert.equal(web.statusCode, 400);
    assert.equal(web.json().error.code, 'invalid_client_secrets');
    assert.match(web.json().error.message, /Web application/);
    const unknown = await app.inject({ url: '/tokend/v1/logins/nope?wait=0' });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().error.code, 'login_not_found');
  });
});
