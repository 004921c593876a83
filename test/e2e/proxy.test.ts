/**
 * Upstream calls behind a corporate proxy, through Debian's tinyproxy: login's code exchange, refresh
 * and revoke go through it (its log shows them), with basic credentials in the proxy URL that never
 * reach a log; NO_PROXY goes around it; https is tunnelled with CONNECT and trusts an extra CA; a
 * proxy that is down, or wants credentials, gives an error that names it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { obtainRedirectUrl } from '../helpers/consent-driver.js';
import { AUTH_URL_LINE, daemonDirs, daemonEnv, freePort, loginByPasteBack, runCli, startCli, startDaemonProcess, stopAllDaemons } from '../helpers/daemon-process.js';
import { getMetadata } from '../helpers/metadata-client.js';
import { recordFigure } from '../helpers/figures.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { startResourceManagerStandin } from '../helpers/resource-manager-standin.js';
import { requirements, skipUnless } from '../helpers/requirements.js';
import { startTinyproxy, type Tinyproxy } from '../helpers/tinyproxy.js';
import { startTlsFront, type TlsFront } from '../helpers/tls-front.js';

const PROXY_PASSWORD = 'pr0xy-Secret-9f2c';
let standin: StandinHandle;
let proxy: Tinyproxy;
let front: TlsFront;
const skip = skipUnless(requirements.tinyproxy);
before(async () => {
  standin = await startStandin();
  if (skip === false) proxy = await startTinyproxy({ user: 'alice', password: PROXY_PASSWORD });
  front = await startTlsFront(Number(new URL(standin.issuer).port));
});
after(async () => {
  await stopAllDaemons();
  proxy?.stop();
  await front?.stop();
  await standin?.stop();
});

async function daemonWith(name: string, extraEnv: NodeJS.ProcessEnv, options: { https?: boolean; config?: Record<string, unknown>; scopes?: string } = {}) {
  const dirs = daemonDirs();
  mkdirSync(dirs.configDir, { mode: 0o700 });
  if (options.config !== undefined) writeFileSync(join(dirs.configDir, 'config.json'), JSON.stringify(options.config), { mode: 0o600 });
  const env = daemonEnv(dirs, { TOKEND_STORE: 'memory', BROWSER: 'false', ...extraEnv });
  for (const variable of ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']) if (!(variable in extraEnv)) delete env[variable];
  const daemon = await startDaemonProcess({ name, env, socket: dirs.socket });
  let clientFile = standin.writeClientSecrets(dirs.root);
  if (options.https === true) {
    const client = JSON.parse(standin.clientSecretsJson()) as { installed: Record<string, string> };
    const https = (uri: string) => uri.replace(/^http:\/\/127\.0\.0\.1:\d+/, `https://localhost:${front.port}`);
    client.installed.token_uri = https(client.installed.token_uri!);
    client.installed.revoke_uri = https(client.installed.revoke_uri!);
    clientFile = join(dirs.root, 'client_secrets_https.json');
    writeFileSync(clientFile, JSON.stringify(client), { mode: 0o600 });
  }
  const args = ['--client-secrets', clientFile, '--scopes', options.scopes ?? 'bigquery', '--default'];
  const login = () => loginByPasteBack(args, env);
  /** A login whose code exchange fails upstream: what the CLI says; the sign-in stays open, so it is then stopped. */
  const refusedLogin = async () => {
    const cli = startCli(['login', ...args, '--no-browser'], env);
    const [, authUrl] = await cli.waitForStderr(AUTH_URL_LINE);
    cli.writeStdin(`${await obtainRedirectUrl(authUrl!)}\n`);
    await cli.waitForStderr(/Paste the address again:/);
    cli.child.kill('SIGINT');
    return (await cli.result).stderr;
  };
  return { env, daemon, login, refusedLogin };
}

describe('through a proxy', { skip }, () => {
  test('login, refresh and revoke go through HTTP_PROXY with its credentials; none of them is logged', async () => {
    const seen = proxy.requests().length;
    const { env, daemon, login } = await daemonWith('proxy-http', { HTTP_PROXY: proxy.url });
    const signedIn = await login();
    assert.equal(signedIn.code, 0, signedIn.stderr);
    const tokenUri = new URL(standin.tokenUri);
    const afterLogin = proxy.requests().slice(seen);
    assert.ok(afterLogin.includes(`POST ${tokenUri.href} HTTP/1.1`), `the code exchange went through the proxy: ${afterLogin.join('; ')}`);
    assert.equal((await runCli(['token', '--scopes', 'bigquery'], env)).code, 0);
    assert.equal(proxy.requests().slice(seen).filter((row) => row === `POST ${tokenUri.href} HTTP/1.1`).length, 2, 'and the refresh');
    assert.equal((await runCli(['logout'], env)).code, 0);
    assert.ok(proxy.requests().slice(seen).includes(`POST ${standin.revokeUri} HTTP/1.1`), 'and the revocation');
    await daemon.stop();
    assert.match(daemon.log(), new RegExp(`"event":"upstream_proxy","https_proxy":"none","http_proxy":"http://127\\.0\\.0\\.1:${proxy.port}"`));
    assert.ok(!daemon.log().includes(PROXY_PASSWORD), 'the proxy password is not in the log');
  });

  test("the Resource Manager lookup of gcloud's project number goes through the proxy too", async () => {
    const resourceManager = await startResourceManagerStandin(standin, { 'tokend-test': '424242424242' });
    try {
      const seen = proxy.requests().length;
      const port = await freePort();
      const { login } = await daemonWith('proxy-resource-manager', { HTTP_PROXY: proxy.url, TOKEND_METADATA_PORT: String(port), TOKEND_RESOURCE_MANAGER_URL: resourceManager.endpoint }, { scopes: 'cloud-platform' });
      assert.equal((await login()).code, 0);
      const answer = await getMetadata(port, '/computeMetadata/v1/project/numeric-project-id');
      assert.deepEqual([answer.status, answer.body], [200, '424242424242']);
      const lookup = `GET ${new URL('v1/projects/tokend-test', resourceManager.endpoint.endsWith('/') ? resourceManager.endpoint : `${resourceManager.endpoint}/`).href} HTTP/1.1`;
      assert.ok(proxy.requests().slice(seen).includes(lookup), proxy.requests().slice(seen).join('; '));
    } finally {
      await resourceManager.stop();
    }
  });

  test('NO_PROXY names the loopback token endpoint: nothing goes through the proxy', async () => {
    const seen = proxy.requests().length;
    const { env, login } = await daemonWith('proxy-bypassed', { HTTP_PROXY: proxy.url, NO_PROXY: 'example.org,127.0.0.1' });
    assert.equal((await login()).code, 0);
    assert.equal((await runCli(['token', '--scopes', 'bigquery'], env)).code, 0);
    assert.deepEqual(proxy.requests().slice(seen), []);
  });

  test('https is tunnelled with CONNECT, and the TLS front is trusted through "extraCaCertificates"; without it the error says how', async () => {
    const seen = proxy.requests().length;
    const trusted = await daemonWith('proxy-https', { HTTPS_PROXY: proxy.url }, { https: true, config: { extraCaCertificates: front.caFile } });
    const signedIn = await trusted.login();
    assert.equal(signedIn.code, 0, signedIn.stderr);
    assert.ok(proxy.requests().slice(seen).includes(`CONNECT localhost:${front.port} HTTP/1.1`), proxy.requests().slice(seen).join('; '));

    const untrusted = await daemonWith('proxy-https-untrusted', { HTTPS_PROXY: proxy.url }, { https: true });
    const refused = await untrusted.refusedLogin();
    assert.match(refused, new RegExp(`could not be reached through the proxy http://127\\.0\\.0\\.1:${proxy.port} \\((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\\)`));
    assert.match(refused, /^hint: .*"extraCaCertificates": "\/path\/to\/ca\.pem" in the config file \(or NODE_EXTRA_CA_CERTS for the daemon\); the sign-in stays open: then paste the same address again$/m);
    recordFigure({ kind: 'fault', faultClass: 'proxy', name: 'a TLS front the daemon does not trust', survived: true, caller: 'the sign-in stays open; the CA and the setting that trusts it are named', log: 'consent_response_refused' });
  });

  test('NODE_EXTRA_CA_CERTS is honoured too', async () => {
    const seen = proxy.requests().length;
    const { login } = await daemonWith('proxy-https-node-ca', { HTTPS_PROXY: proxy.url, NODE_EXTRA_CA_CERTS: front.caFile }, { https: true });
    const signedIn = await login();
    assert.equal(signedIn.code, 0, signedIn.stderr);
    assert.ok(proxy.requests().slice(seen).includes(`CONNECT localhost:${front.port} HTTP/1.1`), 'through the proxy');
  });

  test('a proxy that wants credentials it was not given: the error says so and how to give them', async () => {
    const { refusedLogin } = await daemonWith('proxy-407', { HTTP_PROXY: `http://127.0.0.1:${proxy.port}` });
    const refused = await refusedLogin();
    assert.match(refused, new RegExp(`through the proxy http://127\\.0\\.0\\.1:${proxy.port} \\(the proxy wants credentials: HTTP 407\\)`));
    assert.match(refused, new RegExp(`^hint: give the proxy's user name and password in its URL: HTTPS_PROXY=http://USER:PASSWORD@127\\.0\\.0\\.1:${proxy.port}`, 'm'));
    recordFigure({ kind: 'fault', faultClass: 'proxy', name: 'a proxy that answers 407', survived: true, caller: 'the sign-in stays open; how to give credentials', log: 'consent_response_refused' });
  });
});

test('a proxy that is down: the error names it and how to go around it', async () => {
  const deadPort = await freePort();
  const { refusedLogin } = await daemonWith('proxy-dead', { HTTP_PROXY: `http://bob:hunter2@127.0.0.1:${deadPort}` });
  const refused = await refusedLogin();
  assert.match(refused, new RegExp(`the OAuth server at 127\\.0\\.0\\.1:\\d+ could not be reached through the proxy http://127\\.0\\.0\\.1:${deadPort} \\(ECONNREFUSED\\)`));
  assert.match(refused, new RegExp(`^hint: check that the proxy http://127\\.0\\.0\\.1:${deadPort} is running and lets you through, or go around it for this host: NO_PROXY=127\\.0\\.0\\.1; the sign-in stays open`, 'm'));
  assert.ok(!refused.includes('hunter2'), 'the credentials are not shown');
  recordFigure({ kind: 'fault', faultClass: 'proxy', name: 'a proxy that is down', survived: true, caller: 'the sign-in stays open; NO_PROXY named as the way around', log: 'consent_response_refused' });
});
