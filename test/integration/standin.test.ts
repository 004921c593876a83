// The Google stand-in (test/helpers/oauth-standin.ts) and the consent drivers, tested and shown in use.
// These test the test helpers, not tokend: their names say so.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { consentViaChromium, consentViaHttp, obtainRedirectUrl } from '../helpers/consent-driver.js';
import { CALLBACK_PATH, startStandin } from '../helpers/oauth-standin.js';
import { requirements, skipUnless } from '../helpers/requirements.js';

const BIGQUERY = 'https://www.googleapis.com/auth/bigquery';
const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';
const STORAGE_READ = 'https://www.googleapis.com/auth/devstorage.read_only';
const REQUESTED = ['openid', 'email', BIGQUERY, CLOUD_PLATFORM];

interface TokenAnswer {
  access_token?: string;
  refresh_token?: string;
  id_token?: string;
  scope?: string;
  expires_in?: number;
  error?: string;
  error_description?: string;
  error_subtype?: string;
}

const artifacts = mkdtempSync(join(tmpdir(), 'standin-test-'));
const [standin, callback] = await Promise.all([startStandin({ artifactsDir: artifacts }), startCallbackServer()]);

/** Each group's tests start from a healthy, non-rotating stand-in with zeroed counters. */
function resetBetweenTests(t: TestContext): void {
  t.beforeEach(() => {
    standin.resetStats();
    standin.faults.length = 0;
    standin.setDown(false);
    standin.setRotateRefreshTokens(false);
  });
}

await test('test helper, not tokend: stand-in code flow', async (t) => {
  resetBetweenTests(t);

  await t.test('PKCE code flow: refresh token, granted scope, ID token with email; the callback is fetched', async () => {
    const pkce = pkcePair();
    const result = await consentViaHttp(authorizationUrl(REQUESTED, pkce.challenge, 'state-1'));

    const redirect = new URL(result.redirectUrl);
    assert.equal(redirect.origin + redirect.pathname, callback.redirectUri);
    assert.equal(redirect.searchParams.get('state'), 'state-1');
    assert.equal(result.status, 200);
    assert.match(result.body, /callback received/);

    const tokens = await exchangeCode(redirect.searchParams.get('code')!, pkce.verifier);
    assert.ok(tokens.refresh_token, 'tokens.refresh_token');
    assert.ok(tokens.access_token, 'tokens.access_token');
    assert.equal(tokens.expires_in, 3600);
    assert.deepEqual(scopeSet(tokens.scope), new Set(REQUESTED));
    const idToken = decodeJwt(tokens.id_token!);
    assert.equal(idToken.email, 'alice@example.com');
    assert.equal(idToken.aud, standin.clientId);
    assert.notEqual(idToken.sub, idToken.email);
    assert.equal(standin.stats.codeGrants, 1);

    const introspection = await standin.introspect(tokens.access_token);
    assert.equal(introspection.active, true);
    assert.deepEqual(scopeSet(introspection.scope), new Set(REQUESTED));
  });

  await t.test('the code exchange fails with the wrong PKCE verifier', async () => {
    const pkce = pkcePair();
    const redirect = new URL(await obtainRedirectUrl(authorizationUrl(REQUESTED, pkce.challenge)));
    const answer = await exchangeCode(redirect.searchParams.get('code')!, 'wrong-verifier-'.padEnd(43, 'x'));
    assert.equal(answer.error, 'invalid_grant');
  });

  await t.test('PKCE is required', async () => {
    const url = new URL(authorizationUrl(REQUESTED, 'unused'));
    url.searchParams.delete('code_challenge');
    url.searchParams.delete('code_challenge_method');
    const response = await fetch(url, { redirect: 'manual' });
    const redirect = new URL(response.headers.get('location')!);
    assert.equal(redirect.searchParams.get('error'), 'invalid_request');
    assert.match(redirect.searchParams.get('error_description')!, /PKCE/);
  });

  await t.test('unknown scopes are rejected at the authorization endpoint, as Google does', async () => {
    const url = authorizationUrl(['openid', 'https://www.googleapis.com/auth/nonsense'], pkcePair().challenge);
    const response = await fetch(url, { redirect: 'manual' });
    assert.equal(response.status, 400);
    assert.match(await response.text(), /invalid_scope.*nonsense/s);
    await assert.rejects(obtainRedirectUrl(url), /400/);
  });

  await t.test('unticking a scope on the consent page leaves it out of the token', async () => {
    const tokens = await login(REQUESTED, { grantScopes: [BIGQUERY] });
    assert.deepEqual(scopeSet(tokens.scope), new Set(['openid', 'email', BIGQUERY]));
    assert.deepEqual(scopeSet((await standin.introspect(tokens.access_token!)).scope), scopeSet(tokens.scope));
  });

  await t.test('Cancel on the consent page redirects with error=access_denied', async () => {
    const redirect = new URL(await obtainRedirectUrl(authorizationUrl(REQUESTED, pkcePair().challenge), { deny: true }));
    assert.equal(redirect.searchParams.get('error'), 'access_denied');
    assert.equal(redirect.searchParams.get('code'), null);
  });
});

await test('test helper, not tokend: stand-in refresh', async (t) => {
  resetBetweenTests(t);

  await t.test('a narrower scope gives a token with exactly that scope; no refresh token comes back', async () => {
    const { refresh_token } = await login(REQUESTED);
    const answer = await refresh(refresh_token!, BIGQUERY);
    assert.equal(answer.scope, BIGQUERY);
    assert.equal(answer.refresh_token, undefined, 'Google does not rotate');
    assert.equal((await standin.introspect(answer.access_token!)).scope, BIGQUERY);
    assert.deepEqual(standin.refreshRequests, [{ scope: BIGQUERY }]);

    const unnarrowed = await refresh(refresh_token!);
    assert.deepEqual(scopeSet(unnarrowed.scope), new Set(REQUESTED));
    assert.deepEqual(standin.refreshRequests, [{ scope: BIGQUERY }, { scope: undefined }]);
    assert.equal(standin.stats.refreshGrants, 2);
  });

  await t.test('a scope wider than the grant answers invalid_scope', async () => {
    const { refresh_token } = await login(['openid', BIGQUERY]);
    const answer = await refresh(refresh_token!, `${BIGQUERY} ${STORAGE_READ}`);
    assert.equal(answer.error, 'invalid_scope');
  });

  await t.test('with rotation switched on, each refresh brings a new refresh token and the old one stops working', async () => {
    const { refresh_token: first } = await login(REQUESTED);
    standin.setRotateRefreshTokens(true);
    const answer = await refresh(first!);
    assert.ok(answer.refresh_token, 'answer.refresh_token');
    assert.notEqual(answer.refresh_token, first);
    assert.equal((await refresh(first!)).error, 'invalid_grant');
  });

  await t.test('revocation ends every grant of the project, as Google does', async () => {
    const older = await login(REQUESTED);
    const newer = await login(['openid', BIGQUERY]);
    const response = await fetch(standin.revokeUri, {
      method: 'POST',
      body: new URLSearchParams({ token: newer.refresh_token!, client_id: standin.clientId, client_secret: standin.clientSecret }),
    });
    assert.equal(response.status, 200);
    assert.equal(standin.stats.revocations, 1);
    assert.equal((await refresh(newer.refresh_token!)).error, 'invalid_grant');
    assert.equal((await refresh(older.refresh_token!)).error, 'invalid_grant');
    assert.equal((await standin.introspect(older.access_token!)).active, false);
  });
});

await test('test helper, not tokend: stand-in options: account email, access token lifetime, extra scopes', async () => {
  const drive = 'https://www.googleapis.com/auth/drive.readonly';
  const other = await startStandin({ email: 'bob@example.com', accessTokenTtlSeconds: 5, extraScopes: [drive] });
  try {
    const tokens = await login(['openid', 'email', drive], {}, other);
    assert.equal(tokens.expires_in, 5);
    assert.equal(decodeJwt(tokens.id_token!).email, 'bob@example.com');
    assert.deepEqual(scopeSet(tokens.scope), new Set(['openid', 'email', drive]));
  } finally {
    await other.stop();
  }
});

await test('test helper, not tokend: stand-in faults on the token endpoint', async (t) => {
  resetBetweenTests(t);

  await t.test('a queued 503 answers one request; the next one succeeds', async () => {
    const { refresh_token } = await login(REQUESTED);
    standin.faults.push({ status: 503 });
    const failed = await post(standin.tokenUri, refreshForm(refresh_token!));
    assert.equal(failed.status, 503);
    assert.deepEqual(await failed.json(), { error: 'temporarily_unavailable' });
    assert.ok((await refresh(refresh_token!)).access_token, '(await refresh(refresh_token!)).access_token');
    assert.equal(standin.stats.refreshGrants, 2, 'faulted requests count too');
  });

  await t.test('invalidGrant answers like Google, with the subtype when given', async () => {
    const { refresh_token } = await login(REQUESTED);
    standin.faults.push({ invalidGrant: true, subtype: 'invalid_rapt' }, { invalidScope: true });
    assert.deepEqual(await refresh(refresh_token!), {
      error: 'invalid_grant',
      error_description: 'Token has been expired or revoked.',
      error_subtype: 'invalid_rapt',
    });
    assert.equal((await refresh(refresh_token!, BIGQUERY)).error, 'invalid_scope');
  });

  await t.test('reset drops the connection; delayMs answers late', async () => {
    const { refresh_token } = await login(REQUESTED);
    standin.faults.push({ reset: true }, { delayMs: 200 });
    await assert.rejects(post(standin.tokenUri, refreshForm(refresh_token!)), TypeError);
    const started = Date.now();
    assert.ok((await refresh(refresh_token!)).access_token, '(await refresh(refresh_token!)).access_token');
    assert.ok(Date.now() - started >= 190, 'Date.now() - started >= 190');
  });

  await t.test('setDown fails every request until it is lifted', async () => {
    const { refresh_token } = await login(REQUESTED);
    standin.setDown(true);
    for (let i = 0; i < 3; i++) assert.equal((await post(standin.tokenUri, refreshForm(refresh_token!))).status, 503);
    standin.setDown(true, { reset: true });
    await assert.rejects(post(standin.tokenUri, refreshForm(refresh_token!)));
    standin.setDown(false);
    assert.ok((await refresh(refresh_token!)).access_token, '(await refresh(refresh_token!)).access_token');
    assert.equal(standin.stats.refreshGrants, 5);
  });
});

await test('test helper, not tokend: stand-in files', async (t) => {
  resetBetweenTests(t);

  await t.test('client_secrets.json has the shape of a Google Desktop client file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'standin-client-'));
    try {
      const file = JSON.parse(readFileSync(standin.writeClientSecrets(dir), 'utf8'));
      assert.deepEqual(Object.keys(file), ['installed']);
      assert.equal(file.installed.client_id, standin.clientId);
      assert.equal(file.installed.client_secret, standin.clientSecret);
      assert.equal(file.installed.token_uri, standin.tokenUri);
      assert.equal(file.installed.auth_uri, standin.authUri);
      assert.equal(file.installed.project_id, 'tokend-test');
      assert.deepEqual(file.installed.redirect_uris, ['http://localhost']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  await t.test('every secret issued or received is recorded for the log-leak check', async () => {
    const pkce = pkcePair();
    const redirect = new URL(await obtainRedirectUrl(authorizationUrl(REQUESTED, pkce.challenge)));
    const code = redirect.searchParams.get('code')!;
    const tokens = await exchangeCode(code, pkce.verifier);
    const refreshed = await refresh(tokens.refresh_token!);

    const files = readdirSync(join(artifacts, 'secrets')).sort();
    assert.deepEqual(files, [`access-standin-${process.pid}-${standin.port}.txt`, `standin-${process.pid}-${standin.port}.txt`]);
    const read = (name: string) => new Set(readFileSync(join(artifacts, 'secrets', name), 'utf8').split('\n'));
    const [accessTokens, others] = files.map(read) as [Set<string>, Set<string>];
    for (const secret of [standin.clientSecret, code, pkce.verifier, tokens.refresh_token, tokens.id_token]) {
      assert.ok(others.has(secret!), 'a secret was not recorded');
    }
    for (const token of [tokens.access_token, refreshed.access_token]) assert.ok(accessTokens.has(token!), 'an access token was not recorded among the access tokens');
  });
});

await test('test helper, not tokend: stand-in consent in a real Chromium, unticking a scope', { skip: skipUnless(requirements.chromium) }, async () => {
  const pkce = pkcePair();
  const screenshotPath = join(artifacts, 'consent.png');
  const page = await consentViaChromium(authorizationUrl(REQUESTED, pkce.challenge, 'browser'), {
    grantScopes: [CLOUD_PLATFORM],
    screenshotPath,
  });
  const landed = new URL(page.url);
  assert.equal(landed.origin + landed.pathname, callback.redirectUri);
  assert.equal(page.title, 'tokend-test callback');
  assert.match(page.text, /callback received/);
  assert.ok(existsSync(screenshotPath), 'existsSync(screenshotPath)');

  const tokens = await exchangeCode(landed.searchParams.get('code')!, pkce.verifier);
  assert.deepEqual(scopeSet(tokens.scope), new Set(['openid', 'email', CLOUD_PLATFORM]));
});

await test('test helper, not tokend: stand-in the stand-in met no internal error along the way', () => {
  assert.deepEqual(standin.serverErrors, []);
});

// Each `await test(...)` above settles (pass or fail) before this runs.
await standin.stop();
callback.server.closeAllConnections();
callback.server.close();
rmSync(artifacts, { recursive: true, force: true });

// ---------------------------------------------------------------------------------------------------

/** Stands in for tokend's loopback listener. */
async function startCallbackServer(): Promise<{ server: Server; redirectUri: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>tokend-test callback</title><p>callback received</p>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, redirectUri: `http://127.0.0.1:${(server.address() as AddressInfo).port}${CALLBACK_PATH}` };
}

function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizationUrl(scopes: string[], challenge: string, state = 'state', server = standin): string {
  const url = new URL(server.authUri);
  url.search = new URLSearchParams({
    client_id: server.clientId,
    redirect_uri: callback.redirectUri,
    response_type: 'code',
    scope: scopes.join(' '),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    access_type: 'offline',
    prompt: 'consent',
  }).toString();
  return url.href;
}

async function login(scopes: string[], options: { grantScopes?: string[] } = {}, server = standin): Promise<TokenAnswer> {
  const pkce = pkcePair();
  const redirect = new URL(await obtainRedirectUrl(authorizationUrl(scopes, pkce.challenge, 'state', server), options));
  return exchangeCode(redirect.searchParams.get('code')!, pkce.verifier, server);
}

function exchangeCode(code: string, verifier: string, server = standin): Promise<TokenAnswer> {
  const fields = { grant_type: 'authorization_code', code, redirect_uri: callback.redirectUri, code_verifier: verifier };
  return tokenRequest(fields, server);
}

function refresh(refreshToken: string, scope?: string): Promise<TokenAnswer> {
  return tokenRequest(Object.fromEntries(refreshForm(refreshToken, scope)));
}

function refreshForm(refreshToken: string, scope?: string): URLSearchParams {
  const form = new URLSearchParams({
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    client_id: standin.clientId,
    client_secret: standin.clientSecret,
  });
  if (scope !== undefined) form.set('scope', scope);
  return form;
}

async function tokenRequest(fields: Record<string, string>, server = standin): Promise<TokenAnswer> {
  const form = new URLSearchParams({ client_id: server.clientId, client_secret: server.clientSecret, ...fields });
  return (await (await post(server.tokenUri, form)).json()) as TokenAnswer;
}

function post(url: string, form: URLSearchParams): Promise<Response> {
  return fetch(url, { method: 'POST', body: form });
}

function scopeSet(scope: string | undefined): Set<string> {
  return new Set((scope ?? '').split(' ').filter(Boolean));
}

function decodeJwt(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}
