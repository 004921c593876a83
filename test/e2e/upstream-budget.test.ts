/**
 * A runaway caller of the owner's against the real daemon and the stand-in: cycling through scope sets
 * must not turn into a flood of refresh grants at the OAuth server (Google throttles per client and
 * per user), and a 429 must pause the whole account.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { obtainRedirectUrl } from '../helpers/consent-driver.js';
import { AUTH_URL_LINE, daemonDirs, daemonEnv, startCli, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';

const EXTRA = Array.from({ length: 10 }, (_, i) => `https://www.googleapis.com/auth/test.scope-${i}`);
const subset = (n: number) => EXTRA.filter((_, i) => ((n + 1) >> i) & 1).join(',');

let standin: StandinHandle;
let daemon: DaemonProcess;
let socket: string;

function token(scopes: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const path = `/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(scopes)}`;
    const req = request({ socketPath: socket, path, headers: { host: 'localhost', 'metadata-flavor': 'Google' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  standin = await startStandin({ extraScopes: EXTRA });
  const dirs = daemonDirs();
  socket = dirs.socket;
  const env = daemonEnv(dirs, { TOKEND_STORE: 'memory', BROWSER: 'false' });
  daemon = await startDaemonProcess({ name: 'upstream-budget', env, socket });
  const login = startCli(['login', '--client-secrets', standin.writeClientSecrets(dirs.root), '--scopes', EXTRA.join(','), '--no-browser'], env);
  const [, authUrl] = await login.waitForStderr(AUTH_URL_LINE);
  login.writeStdin(`${await obtainRedirectUrl(authUrl!)}\n`);
  assert.equal((await login.result).code, 0);
});
after(async () => {
  await daemon.stop();
  await standin.stop();
});

describe('a runaway caller', () => {
  test('regression: 300 distinct scope sets cause a bounded number of refresh grants, the rest a 429', async () => {
    standin.resetStats();
    const statuses: number[] = [];
    for (let n = 0; n < 300; n++) statuses.push(await token(subset(n)));
    // The burst of 30, plus what the budget refills while the loop runs (30 a minute).
    assert.ok(standin.stats.refreshGrants <= 40, `${standin.stats.refreshGrants} refresh grants`);
    assert.ok(statuses.filter((s) => s === 429).length >= 260, 'statuses.filter((s) => s === 429).length >= 260');
    assert.match(daemon.log(), /"event":"upstream_held_back".*"code":"upstream_throttled"/);
    assert.ok((daemon.log().match(/"event":"upstream_held_back"/g) ?? []).length <= 2, 'held-back refusals are logged once a minute, not per request');
  });

  test('regression: with the server answering 429 and Retry-After, 100 new sets cost one upstream request', async () => {
    await new Promise((resolve) => setTimeout(resolve, 4_000)); // let the budget refill a couple of grants
    standin.resetStats();
    standin.setDown(true, { status: 429, retryAfterSeconds: 120 });
    try {
      for (let n = 400; n < 500; n++) assert.notEqual(await token(subset(n)), 200);
      assert.equal(standin.stats.refreshGrants, 1);
    } finally {
      standin.setDown(false);
    }
  });
});
