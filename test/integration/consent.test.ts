/**
 * The consent session on its own against the stand-in: the loopback listener, `state`, single use,
 * the deadline (driven by a manual clock) and the pages the browser shows.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { AccountRegistry } from '../../src/broker/accounts.js';
import { Broker } from '../../src/broker/broker.js';
import { LoginManager } from '../../src/broker/login.js';
import { ScopeSet } from '../../src/broker/scopes.js';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { LoginFailedError, LoginTimeoutError } from '../../src/errors.js';
import { parseClientSecrets } from '../../src/oauth/client-config.js';
import { ConsentSession, type ConsentGrant } from '../../src/oauth/consent.js';
import { TokenEndpoint } from '../../src/oauth/token-endpoint.js';
import { consentViaHttp, obtainRedirectUrl } from '../helpers/consent-driver.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';

const G = 'https://www.googleapis.com/auth/';
let standin: StandinHandle;

before(async () => {
  standin = await startStandin();
});
after(async () => {
  await standin.stop();
});

const RETRY = 'tokend login --client-secrets c.json --scopes bigquery --login-hint alice@example.com';

function start(clock = new ManualClock(Date.now()), timeoutMs = 60_000) {
  return ConsentSession.start<ConsentGrant>({
    client: parseClientSecrets(standin.clientSecretsJson()),
    scopes: [`${G}bigquery`],
    loginHint: 'alice@example.com',
    retryCommand: RETRY,
    timeoutMs,
    clock,
    tokenEndpoint: new TokenEndpoint({ timeoutMs: 5000 }),
    finish: (grant) => Promise.resolve({ value: grant, page: { outcome: 'ok' as const, heading: `Signed in as ${grant.email}`, lines: [] } }),
  });
}

async function get(url: string) {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

describe('consent session', () => {
  test('the authorization URL: PKCE S256, state, loopback redirect, openid email added, login hint', async () => {
    const session = await start();
    const url = new URL(session.authUrl);
    assert.equal(url.origin + url.pathname, standin.authUri);
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.match(url.searchParams.get('code_challenge') ?? '', /^[\w-]{43}$/);
    assert.ok((url.searchParams.get('state') ?? '').length >= 32, '(url.searchParams.get(\'state\') ?? \'\').length >= 32');
    assert.equal(url.searchParams.get('redirect_uri'), session.redirectUri);
    assert.match(session.redirectUri, /^http:\/\/127\.0\.0\.1:\d+\/oauth2callback$/);
    assert.deepEqual(url.searchParams.get('scope')?.split(' ').sort(), ['email', `${G}bigquery`, 'openid']);
    assert.equal(url.searchParams.get('login_hint'), 'alice@example.com');
    session.cancel('test over');
    await assert.rejects(session.result, LoginFailedError);
  });

  test('a wrong state gets a clear page and does not end the sign-in; the right one completes it, once', async () => {
    const session = await start();
    const redirect = new URL(await obtainRedirectUrl(session.authUrl));
    const forged = new URL(redirect);
    forged.searchParams.set('state', 'forged-state-value-forged-state-value');
    const wrong = await get(forged.toString());
    assert.equal(wrong.status, 400);
    assert.match(wrong.body, /state does not match/);

    // Of the right length, differing in one character only (first, then last): compared whole, not by length.
    const real = redirect.searchParams.get('state')!;
    for (const state of [`${real[0] === 'A' ? 'B' : 'A'}${real.slice(1)}`, `${real.slice(0, -1)}${real.at(-1) === 'A' ? 'B' : 'A'}`]) {
      const near = new URL(redirect);
      near.searchParams.set('state', state);
      assert.equal(state.length, real.length);
      assert.equal((await get(near.toString())).status, 400, `state ${state}`);
    }
    assert.equal(session.finished, false);

    const right = await get(redirect.toString());
    assert.equal(right.status, 200);
    assert.match(right.body, /Signed in as alice@example\.com/);
    const grant = await session.result;
    assert.equal(grant.email, 'alice@example.com');
    assert.deepEqual(grant.grant.scope?.split(' ').sort(), ['email', `${G}bigquery`, 'openid']);
    assert.equal((await standin.introspect(grant.grant.refreshToken.reveal())).active, true);

    // Single use: the listener is closed once the sign-in is done.
    await assert.rejects(fetch(redirect.toString()), /fetch failed/);
  });

  test('regression: malformed request lines to the listener get an answer, not a crash', async () => {
    const session = await start();
    const { port } = new URL(session.redirectUri);
    for (const target of ['//', '///', '//[', '/oauth2callback?%ZZ']) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.end(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      assert.match(answer, /^HTTP\/1\.1 (400|404)/, target);
    }
    const page = await consentViaHttp(session.authUrl);
    assert.equal(page.status, 200);
    assert.equal((await session.result).email, 'alice@example.com');
  });

  test('a cancel while the code is being exchanged stores nothing', async () => {
    let stored = false;
    const session = await ConsentSession.start<ConsentGrant>({
      client: parseClientSecrets(standin.clientSecretsJson()),
      scopes: [`${G}bigquery`],
      retryCommand: RETRY,
      timeoutMs: 60_000,
      clock: new ManualClock(Date.now()),
      tokenEndpoint: new TokenEndpoint({ timeoutMs: 5000 }),
      finish: (grant) => {
        stored = true;
        return Promise.resolve({ value: grant, page: { outcome: 'ok' as const, heading: 'ok', lines: [] } });
      },
    });
    const redirect = await obtainRedirectUrl(session.authUrl);
    standin.faults.push({ delayMs: 500 });
    const codeGrantsBefore = standin.stats.codeGrants;
    const callback = get(redirect);
    const deadline = Date.now() + 5_000;
    while (standin.stats.codeGrants === codeGrantsBefore && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    assert.notEqual(standin.stats.codeGrants, codeGrantsBefore, 'the code exchange reached the stand-in within 5 s');
    await session.close('the daemon is shutting down');
    assert.equal(stored, false);
    await assert.rejects(session.result, /the sign-in was cancelled: the daemon is shutting down/);
    const page = await callback.catch(() => ({ status: 0, body: '' }));
    assert.notEqual(page.status, 200);
  });

  test('access denied on the consent screen: a failure page and a clear error', async () => {
    const session = await start();
    const page = await consentViaHttp(session.authUrl, { deny: true });
    assert.equal(page.status, 403);
    assert.match(page.body, /Access denied/);
    assert.ok(page.body.includes(`To try again, run <code>${RETRY}</code>.`), `the page names the full command: ${page.body}`);
    await assert.rejects(session.result, (error: unknown) => {
      assert.ok(error instanceof LoginFailedError, 'a login failure');
      assert.match(error.message, /access was denied on the consent screen/);
      assert.equal(error.hint, `run \`${RETRY}\` and allow access on the consent screen`);
      return true;
    });
  });

  test('no answer before the deadline: a timeout error, and a late redirect gets a timeout page', async () => {
    const clock = new ManualClock(Date.now());
    const session = await start(clock, 5 * 60_000);
    const redirect = await obtainRedirectUrl(session.authUrl);
    clock.advance(5 * 60_000 + 1);
    await assert.rejects(session.result, (error: unknown) => {
      assert.ok(error instanceof LoginTimeoutError, 'error instanceof LoginTimeoutError');
      assert.match(error.message, /no sign-in arrived within 5 min$/);
      assert.equal(error.hint, `run \`${RETRY}\` and finish the consent within 5 min`, 'the full command, and no --no-browser advice from the daemon');
      return true;
    });
    const late = await get(redirect);
    assert.equal(late.status, 408);
    assert.match(late.body, /Sign-in timed out/);
    clock.advance(61_000); // the grace period ends and the listener closes
    await assert.rejects(fetch(redirect), /fetch failed/);
  });

  test('a pasted redirect URL completes the sign-in; a mangled one is refused and the sign-in stays open', async () => {
    const session = await start();
    const redirect = await obtainRedirectUrl(session.authUrl);
    await assert.rejects(session.completeWithRedirectUrl('not a url'), /the pasted text is not a URL/);
    await assert.rejects(session.completeWithRedirectUrl('http://127.0.0.1:1/elsewhere?code=x'), /not the redirect of this sign-in/);
    const grant = await session.completeWithRedirectUrl(redirect);
    assert.equal(grant.email, 'alice@example.com');
  });

  test('regression: a consent by another account than --login-hint is refused and the sign-in stays open', async () => {
    const session = await start(); // hinted alice@example.com
    const wrong = await consentViaHttp(session.authUrl, { login: 'mallory@evil.example' });
    assert.equal(wrong.status, 403);
    assert.match(wrong.body, /given as mallory@evil\.example, but this sign-in is for alice@example\.com/);
    assert.equal(session.finished, false);
    const right = await consentViaHttp(session.authUrl);
    assert.equal(right.status, 200);
    assert.equal((await session.result).email, 'alice@example.com');
  });

  test('regression: a response with the right state but a bogus code does not end the sign-in', async () => {
    const session = await start();
    const state = new URL(session.authUrl).searchParams.get('state')!;
    const bogus = await get(`${session.redirectUri}?state=${encodeURIComponent(state)}&code=bogus`);
    assert.equal(bogus.status, 403);
    assert.match(bogus.body, /still open/);
    assert.equal(session.finished, false);
    assert.equal((await consentViaHttp(session.authUrl)).status, 200);
    assert.equal((await session.result).email, 'alice@example.com');
  });

  test('regression: a redirect carrying state or code twice is refused, even with the real ones, and the sign-in stays open', async () => {
    const session = await start();
    const real = new URL(await obtainRedirectUrl(session.authUrl));
    const code = real.searchParams.get('code')!;
    const state = real.searchParams.get('state')!;
    for (const query of [`code=${code}&state=${state}&state=${state}`, `code=forged&code=${code}&state=${state}`, `error=access_denied&error=x&state=${state}&code=${code}`]) {
      const answer = await get(`${session.redirectUri}?${query}`);
      assert.equal(answer.status, 400, query);
      assert.match(answer.body, /more than once/);
      assert.equal(session.finished, false, query);
    }
    assert.equal((await get(real.toString())).status, 200, 'the real redirect still completes it');
    assert.equal((await session.result).email, 'alice@example.com');
  });

  test('regression: idle connections are capped, and every one is cut when the sign-in ends', async () => {
    const session = await start();
    const { port } = new URL(session.redirectUri);
    const closed: boolean[] = [];
    const sockets = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        new Promise<ReturnType<typeof connect>>((resolve) => {
          closed[i] = false;
          const socket = connect(Number(port), '127.0.0.1', () => resolve(socket));
          socket.on('close', () => (closed[i] = true));
          socket.on('error', () => undefined);
          socket.resume();
        }),
      ),
    );
    const settle = () => new Promise((resolve) => setTimeout(resolve, 300));
    await settle();
    const held = closed.filter((c) => !c).length;
    assert.ok(held <= 8, `${held} idle connections are held (cap 8)`);
    assert.ok(held > 0, 'held > 0');
    session.cancel('test over');
    await assert.rejects(session.result, LoginFailedError);
    const deadline = Date.now() + 3_000;
    while (closed.some((c) => !c) && Date.now() < deadline) await settle();
    assert.deepEqual(closed.filter((c) => !c), [], 'no connection outlives the sign-in');
    for (const socket of sockets) socket.destroy();
  });

  test('regression: finished sign-ins do not count against the cap of 8, so a new login cannot cancel the only open one', async () => {
    const accounts = new AccountRegistry(new MemoryStore(), silentLogger());
    const clock = new ManualClock(Date.now());
    const upstream = new TokenEndpoint({ timeoutMs: 5000 });
    const broker = new Broker({ accounts, upstream, clock, logger: silentLogger() });
    const logins = new LoginManager({ broker, upstream, clock, logger: silentLogger() });
    const request = { clientSecrets: standin.clientSecretsJson(), scopes: ScopeSet.parse('bigquery') };
    const started = [];
    for (let i = 0; i < 8; i++) started.push(await logins.start(request));
    // Seven are denied on the consent screen (finished, but kept a while so their result can be read).
    for (const login of started.slice(1)) {
      const state = new URL(login.authUrl).searchParams.get('state')!;
      assert.equal((await get(`${login.redirectUri}?state=${encodeURIComponent(state)}&error=access_denied`)).status, 403);
    }
    const newer = await logins.start(request);
    assert.equal(await logins.wait(started[0]!.id, 0), undefined, 'the only open sign-in is still open');
    await logins.closeAll('test over');
    assert.ok(newer.id, 'newer.id');
  });

  test('regression: a request a page makes the owner\'s browser send (an <img>, a fetch) is refused and the sign-in stays open', async () => {
    const session = await start();
    const redirect = await obtainRedirectUrl(session.authUrl);
    for (const dest of ['image', 'empty', 'iframe']) {
      const response = await fetch(redirect, { headers: { 'sec-fetch-dest': dest } });
      assert.equal(response.status, 403, dest);
    }
    assert.equal(session.finished, false);
    assert.equal((await fetch(redirect, { headers: { 'sec-fetch-dest': 'document' } })).status, 200);
    assert.equal((await session.result).email, 'alice@example.com');
  });

  test('the start address redirects the browser to the consent screen while the sign-in is open', async () => {
    const session = await start();
    assert.match(session.startUrl, new RegExp(`^${new URL(session.redirectUri).origin}/start/`));
    const response = await fetch(session.startUrl, { redirect: 'manual' });
    assert.equal(response.status, 302);
    assert.equal(response.headers.get('location'), session.authUrl);
    session.cancel('test over');
    await assert.rejects(session.result, LoginFailedError);
  });
});

describe('the code exchange', () => {
  test('a code exchange answered 503 is not retried (a code is single-use, and a replay revokes the grant); the sign-in stays open', async () => {
    const session = await start();
    const redirect = await obtainRedirectUrl(session.authUrl);
    const before = standin.stats.codeGrants;
    standin.faults.push({ status: 503 });
    try {
      const response = await fetch(redirect);
      assert.equal(response.status, 502, 'the page says the exchange failed');
      assert.equal(standin.stats.codeGrants - before, 1, 'exactly one exchange request');
      assert.equal(session.finished, false, 'the sign-in stays open');
    } finally {
      standin.faults.length = 0;
      await session.close('test over');
    }
  });
});

describe('the consent listener', () => {
  test('listens on 127.0.0.1 only, never on every interface (the kernel table says where it is bound)', async () => {
    const session = await start();
    try {
      const port = Number(new URL(session.redirectUri).port);
      const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
      const listening = ['/proc/net/tcp', '/proc/net/tcp6']
        .flatMap((path) => readFileSync(path, 'latin1').split('\n').slice(1))
        .map((line) => line.trim().split(/\s+/))
        .filter((fields) => fields[3] === '0A' && fields[1]?.endsWith(`:${hexPort}`))
        .map((fields) => fields[1]);
      assert.deepEqual(listening, [`0100007F:${hexPort}`], 'one listening socket, on 127.0.0.1');
    } finally {
      await session.close('test over');
    }
  });
});
