/**
 * The whole life of an account, as a user lives it: the daemon on a real Secret Service
 * (gnome-keyring on a private D-Bus), `tokend login` opening the browser through $BROWSER, consent
 * clicked in headless Chromium, narrow tokens checked by the stand-in's introspection, then logout.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { consentViaChromium } from '../helpers/consent-driver.js';
import { daemonDirs, runCli, startCli, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.js';
import { startKeyringSession, type KeyringSession } from '../helpers/keyring-session.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { requirements, skipUnless } from '../helpers/requirements.js';

const G = 'https://www.googleapis.com/auth/';
const skip = skipUnless(requirements.keyring, requirements.chromium);
const RECORD_URL = new URL('../fixtures/record-browser-url.js', import.meta.url).pathname;

let standin: StandinHandle;
let keyring: KeyringSession;
let daemon: DaemonProcess;
let env: NodeJS.ProcessEnv;
let dirs: ReturnType<typeof daemonDirs>;
let browserLog: string;

before(async () => {
  if (skip) return;
  standin = await startStandin();
  keyring = await startKeyringSession();
  dirs = daemonDirs();
  browserLog = join(dirs.root, 'browser-urls.txt');
  env = {
    ...keyring.env,
    TOKEND_SOCKET: dirs.socket,
    TOKEND_CONFIG_DIR: dirs.configDir,
    TOKEND_STORE: 'keychain',
    BROWSER: `${process.execPath} ${RECORD_URL} ${browserLog}`,
  };
  daemon = await startDaemonProcess({ name: 'lifecycle', env, socket: dirs.socket });
});

after(async () => {
  if (skip) return;
  await daemon?.stop();
  await keyring?.stop();
  await standin?.stop();
});

/** The browser hook runs detached from the CLI: wait (bounded) until it has written the URL. */
async function waitForFile(path: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path) || readFileSync(path, 'utf8') === '') {
    if (Date.now() > deadline) throw new Error(`${path} was not written within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return readFileSync(path, 'utf8');
}

test('serve → login in Chromium → narrow token → introspection → logout revokes and deletes', { skip }, async () => {
  // Login: the CLI asks the daemon for a consent and opens $BROWSER with the URL; the "browser" here
  // records the URL, and Chromium completes the consent on the stand-in's pages.
  const login = startCli(['login', '--client-secrets', standin.writeClientSecrets(dirs.root), '--scopes', 'bigquery,cloud-platform'], env);
  await login.waitForStderr(/Opened the browser/);
  await login.waitForStderr(/Waiting for consent/);
  // The browser is given tokend's local start address, which redirects to the consent screen: no
  // state or code challenge in any process's argv.
  const startUrl = (await waitForFile(browserLog)).trim();
  assert.match(startUrl, /^http:\/\/127\.0\.0\.1:\d+\/start\/[\w-]{16,}$/);
  const authUrl = (await fetch(startUrl, { redirect: 'manual' })).headers.get('location') ?? '';
  assert.match(authUrl, /^http:\/\/127\.0\.0\.1:\d+\/auth\?/);
  const params = new URL(authUrl).searchParams;
  assert.equal(params.get('code_challenge_method'), 'S256');
  assert.match(params.get('scope') ?? '', /openid/);
  assert.match(params.get('redirect_uri') ?? '', /^http:\/\/127\.0\.0\.1:\d+\/oauth2callback$/);

  const page = await consentViaChromium(startUrl);
  assert.match(page.title, /Signed in as alice@example\.com/);
  assert.match(page.text, /Granted: bigquery, cloud-platform\./);
  const result = await login.result;
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^Logged in as alice@example\.com\nGranted scopes: .*bigquery.*cloud-platform/);
  assert.match(result.stderr, /The refresh token is kept in: .*Secret Service/);

  // The refresh token is in the keychain, and nowhere on disk.
  const items = await keyring.search('tokend');
  assert.deepEqual(items.map((i) => i.account), ['alice@example.com']);
  const refreshToken = JSON.parse(items[0]!.secret).refresh_token as string;
  assert.equal((await standin.introspect(refreshToken)).active, true);
  for (const file of ['secrets.json']) assert.ok(!existsSync(join(dirs.configDir, file)), `${file} must not exist`);
  assert.equal(JSON.parse(readFileSync(join(dirs.configDir, 'store.json'), 'utf8')).kind, 'keychain');

  // A token for a narrower scope carries exactly that scope.
  const token = await runCli(['token', '--scopes', 'bigquery'], env);
  assert.equal(token.code, 0, token.stderr);
  const accessToken = token.stdout.trim();
  assert.equal(token.stdout, `${accessToken}\n`, 'only the token on stdout');
  const introspection = await standin.introspect(accessToken);
  assert.equal(introspection.active, true);
  assert.equal(introspection.scope, `${G}bigquery`);

  // Logout revokes the grant upstream and deletes the secret from the keychain.
  const logout = await runCli(['logout'], env);
  assert.equal(logout.code, 0, logout.stderr);
  assert.match(logout.stdout, /Logged out alice@example\.com \(grant revoked upstream\)/);
  assert.equal(standin.stats.revocations, 1);
  assert.equal((await standin.introspect(refreshToken)).active, false);
  assert.equal((await standin.introspect(accessToken)).active, false);
  assert.deepEqual(await keyring.search('tokend'), []);

  const after = await runCli(['token', '--scopes', 'bigquery'], env);
  assert.equal(after.code, 4);
  assert.match(after.stderr, /not logged in/);

  assert.equal(await daemon.stop(), 0);
  assert.throws(() => statSync(dirs.socket), /ENOENT/);
});
