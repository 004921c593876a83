/**
 * The real daemon and CLI as processes, against the oidc-provider stand-in, with the file store (the
 * keychain has its own suite). Consent is completed by the HTTP form driver here; lifecycle.test.ts
 * does it in Chromium.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { consentViaHttp, obtainRedirectUrl } from '../helpers/consent-driver.js';
import { AUTH_URL_LINE, BIN, daemonDirs, daemonEnv, runCli, stopAllDaemons, startCli, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.js';
import { noSecretServiceEnv } from '../helpers/keyring-session.js';
import { getOverSocket } from '../helpers/metadata-client.js';
import { requirements, skipUnless } from '../helpers/requirements.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';

const G = 'https://www.googleapis.com/auth/';

let standin: StandinHandle;
before(async () => {
  standin = await startStandin();
});
after(async () => {
  await stopAllDaemons();
  await standin?.stop();
});
beforeEach(() => {
  // One test's injected faults must not reach the next.
  standin.faults.length = 0;
  standin.setDown(false);
  standin.setRotateRefreshTokens(false);
  standin.resetStats();
});

interface Setup {
  dirs: ReturnType<typeof daemonDirs>;
  env: NodeJS.ProcessEnv;
  clientFile: string;
  daemon: DaemonProcess;
}

async function startDaemon(name: string, extraEnv: NodeJS.ProcessEnv = {}, dirs = daemonDirs()): Promise<Setup> {
  const env = daemonEnv(dirs, {
    TOKEND_STORE: 'file',
    TOKEND_FILE_PASSPHRASE: 'correct horse battery staple',
    BROWSER: 'false',
    ...extraEnv,
  });
  const daemon = await startDaemonProcess({ name, env, socket: dirs.socket });
  return { dirs, env, clientFile: standin.writeClientSecrets(dirs.root), daemon };
}

/** `tokend login --no-browser`, consenting by HTTP and pasting the redirect back as an SSH user would. */
async function loginByPasteBack(setup: Setup, scopes: string, grantScopes?: string[]) {
  const cli = startCli(['login', '--client-secrets', setup.clientFile, '--scopes', scopes, '--no-browser'], setup.env);
  const [, authUrl] = await cli.waitForStderr(AUTH_URL_LINE);
  const redirect = await obtainRedirectUrl(authUrl!, grantScopes === undefined ? {} : { grantScopes });
  cli.writeStdin(`${redirect}\n`);
  return cli.result;
}

const execFileAsync = promisify(execFile);

const tokenPath = (scopes: string) => `/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(scopes)}`;

describe('daemon process', () => {
  test('regression: login --no-browser ends when the redirect reaches the daemon by itself, with stdin left open', async () => {
    const setup = await startDaemon('no-browser-direct', { TOKEND_STORE: 'memory' });
    try {
      const cli = startCli(['login', '--client-secrets', setup.clientFile, '--scopes', 'bigquery', '--no-browser'], setup.env);
      const [, authUrl] = await cli.waitForStderr(AUTH_URL_LINE);
      assert.equal((await consentViaHttp(authUrl!)).status, 200); // a browser on this host, or ssh -L
      const result = await cli.result; // stdin is never written to nor closed
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^Logged in as alice@example\.com$/m);
    } finally {
      await setup.daemon.stop();
    }
  });

  test('regression: the browser opener gets the environment without TOKEND_FILE_PASSPHRASE', async () => {
    const dirs = daemonDirs();
    const seen = join(dirs.root, 'browser-env.txt');
    const setup = await startDaemon('browser-env', { BROWSER: `env > ${seen}; :` }, dirs);
    const cli = startCli(['login', '--client-secrets', setup.clientFile, '--scopes', 'bigquery'], setup.env);
    try {
      await cli.waitForStderr(/Waiting for consent/);
      const deadline = Date.now() + 5_000;
      while (!existsSync(seen) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const env = readFileSync(seen, 'utf8');
      assert.match(env, /^TOKEND_SOCKET=/m, 'the opener got the environment');
      assert.doesNotMatch(env, /TOKEND_FILE_PASSPHRASE/);
      assert.doesNotMatch(env, /correct horse battery staple/);
    } finally {
      cli.child.kill('SIGINT');
      await cli.result.catch(() => undefined);
      await setup.daemon.stop();
    }
  });

  test('regression: core dumps are disabled for the daemon (they would hold the refresh tokens)', async () => {
    const setup = await startDaemon('core-dumps', { TOKEND_STORE: 'memory' });
    try {
      const limits = readFileSync(`/proc/${setup.daemon.child.pid}/limits`, 'utf8');
      assert.match(limits, /^Max core file size\s+0\s+0\s/m);
      assert.match(setup.daemon.log(), /"event":"core_dumps_disabled"/);
    } finally {
      await setup.daemon.stop();
    }
  });

  test('socket directory 0700, socket 0600; a second daemon refuses; a stale socket is replaced', async () => {
    const setup = await startDaemon('modes');
    assert.equal(statSync(join(setup.dirs.root, 'run')).mode & 0o777, 0o700);
    assert.equal(statSync(setup.dirs.socket).mode & 0o777, 0o600);
    assert.ok(statSync(setup.dirs.socket).isSocket(), 'statSync(setup.dirs.socket).isSocket()');

    const second = await runCli(['serve'], setup.env);
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /another tokend is already serving on/);
    assert.ok(statSync(setup.dirs.socket).isSocket(), 'the live socket was not taken over');
    const ping = await getOverSocket(setup.dirs.socket, '/');
    assert.equal(ping.status, 200);

    // A daemon killed outright leaves its socket behind; the next one removes it and starts.
    setup.daemon.child.kill('SIGKILL');
    await setup.daemon.exited;
    assert.ok(statSync(setup.dirs.socket).isSocket(), 'statSync(setup.dirs.socket).isSocket()');
    const next = await startDaemonProcess({ name: 'modes-restart', env: setup.env, socket: setup.dirs.socket });
    assert.equal((await getOverSocket(setup.dirs.socket, '/')).status, 200);
    assert.equal(await next.stop(), 0);
    assert.throws(() => statSync(setup.dirs.socket), /ENOENT/, 'SIGTERM removes the socket');
  });

  test('bad input gets a clear error and the daemon keeps running', async () => {
    const setup = await startDaemon('bad-input', { TOKEND_STORE: 'memory' });
    try {
      const post = (path: string, body: string, type = 'application/json') =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = request(
            { socketPath: setup.dirs.socket, path, method: 'POST', headers: { host: 'localhost', 'content-type': type } },
            (res) => {
              let text = '';
              res.on('data', (chunk: Buffer) => (text += chunk.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      const cases: Array<[Promise<{ status: number; body: string }>, number, RegExp]> = [
        [post('/tokend/v1/logins', '{not json'), 400, /bad_request/],
        [post('/tokend/v1/logins', 'x'.repeat(200_000)), 413, /bad_request/],
        [post('/tokend/v1/logins', 'a=b', 'application/x-www-form-urlencoded'), 415, /bad_request/],
        [post('/tokend/v1/logins', JSON.stringify({ clientSecrets: '{"installed":{}}' })), 400, /invalid_client_secrets/],
        [post('/tokend/v1/logins', JSON.stringify({ clientSecrets: standin.clientSecretsJson(), scopes: 'not a scope!' })), 400, /invalid_scope/],
        [post('/tokend/v1/logout', JSON.stringify({ revoke: 'yes' })), 400, /revoke\\" must be true or false/],
        [getOverSocket(setup.dirs.socket, tokenPath('a'.repeat(5000))), 400, /invalid_scope/],
        [getOverSocket(setup.dirs.socket, '/computeMetadata/v1/instance/service-accounts/%ZZ/token'), 400, /bad_request/],
      ];
      for (const [pending, status, body] of cases) {
        const response = await pending;
        assert.equal(response.status, status, response.body);
        assert.match(response.body, body);
      }
      // Raw garbage on the socket is dropped without taking the daemon down.
      await new Promise<void>((resolve) => {
        const raw = connect(setup.dirs.socket, () => raw.end('\x00\x01 GARBAGE / HTTP/9.9\r\n\r\n'));
        raw.on('close', () => resolve());
        raw.on('error', () => resolve());
        raw.resume();
      });
      assert.equal((await getOverSocket(setup.dirs.socket, '/')).status, 200);
      assert.equal(setup.daemon.child.exitCode, null);
    } finally {
      await setup.daemon.stop();
    }
  });

  test('a socket directory that others can write is refused', async () => {
    const dirs = daemonDirs();
    mkdirSync(join(dirs.root, 'run'), { mode: 0o777 });
    chmodSync(join(dirs.root, 'run'), 0o777);
    const result = await runCli(['serve', '--socket', dirs.socket, '--store', 'memory'], { ...process.env, TOKEND_CONFIG_DIR: dirs.configDir });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /writable by other users/);
    assert.match(result.stderr, /chmod 700/);
  });

  test('regression: a second daemon fails on the socket before it touches the store marker', async () => {
    const setup = await startDaemon('marker');
    try {
      assert.equal((await loginByPasteBack(setup, 'bigquery')).code, 0);
      const marker = readFileSync(join(setup.dirs.configDir, 'store.json'), 'utf8');
      const second = await runCli(['serve', '--store', 'memory'], setup.env);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /another tokend is already serving/);
      const third = await runCli(['serve', '--store', 'keychain'], { ...noSecretServiceEnv(), ...setup.env, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent' });
      assert.match(third.stderr, /another tokend is already serving/);
      assert.equal(readFileSync(join(setup.dirs.configDir, 'store.json'), 'utf8'), marker);
    } finally {
      await setup.daemon.stop();
    }
  });

  test('the daemon refuses a socket directory that another user owns', { skip: process.getuid?.() === 0 ? false : 'needs root to create a directory owned by another user' }, async () => {
    const dirs = daemonDirs();
    mkdirSync(join(dirs.root, 'run'), { mode: 0o700 });
    chownSync(join(dirs.root, 'run'), 65534, 65534);
    const result = await runCli(['serve', '--socket', dirs.socket, '--store', 'memory'], { ...process.env, TOKEND_CONFIG_DIR: dirs.configDir });
    assert.equal(result.code, 9);
    assert.match(result.stderr, /is owned by uid 65534, not by you/);
  });

  test('regression: a dangling symlink at the socket directory gets a real message, not "unexpected failure"', async () => {
    const dirs = daemonDirs();
    symlinkSync(join(dirs.root, 'nowhere'), join(dirs.root, 'run'));
    const result = await runCli(['serve', '--socket', dirs.socket, '--store', 'memory'], { ...process.env, TOKEND_CONFIG_DIR: dirs.configDir });
    assert.equal(result.code, 9);
    assert.match(result.stderr, /the socket directory .*\/run is a symbolic link/);
    assert.match(result.stderr, /hint: remove the link/);
  });

  test('the CLI refuses a socket directory that another user owns', { skip: process.getuid?.() === 0 ? false : 'needs root to create a directory owned by another user' }, async () => {
    const dirs = daemonDirs();
    mkdirSync(join(dirs.root, 'run'), { mode: 0o700 });
    chownSync(join(dirs.root, 'run'), 65534, 65534);
    const result = await runCli(['token'], { ...process.env, TOKEND_SOCKET: dirs.socket, TOKEND_CONFIG_DIR: dirs.configDir });
    assert.equal(result.code, 3);
    assert.match(result.stderr, /refusing to talk to .*: .*\/run is owned by uid 65534, not by you/);
  });

  test('the CLI says when no daemon runs and how to start one', async () => {
    const dirs = daemonDirs();
    const result = await runCli(['token'], { ...process.env, TOKEND_SOCKET: dirs.socket, TOKEND_CONFIG_DIR: dirs.configDir });
    assert.equal(result.code, 3);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /no tokend is running on/);
    assert.match(result.stderr, /tokend serve/);
  });
});

describe('login, tokens and scope limits over the socket', () => {
  let setup: Setup;
  before(async () => {
    setup = await startDaemon('scopes');
  });
  after(async () => {
    await setup.daemon.stop();
  });

  test('partial consent (one scope unticked) is reported, and only the granted scope is served', async () => {
    const result = await loginByPasteBack(setup, 'bigquery,cloud-platform', [`${G}bigquery`]);
    assert.equal(result.code, 6, result.stderr);
    assert.match(result.stdout, /Logged in as alice@example\.com/);
    assert.match(result.stdout, /Granted scopes: .*bigquery/);
    assert.doesNotMatch(result.stdout, /cloud-platform/);
    assert.match(result.stderr, /consent was partial: not granted: cloud-platform$/m);
    assert.match(result.stderr, /^hint: .*run `tokend login --client-secrets \S+client_secrets\.json --scopes bigquery,cloud-platform --login-hint alice@example\.com` and leave them ticked$/m);

    const granted = await runCli(['token', '--scopes', 'bigquery'], setup.env);
    assert.equal(granted.code, 0, granted.stderr);
    assert.equal((await standin.introspect(granted.stdout.trim())).scope, `${G}bigquery`);

    const refused = await getOverSocket(setup.dirs.socket, tokenPath('cloud-platform'));
    assert.equal(refused.status, 403);
    const { error } = JSON.parse(refused.body);
    assert.equal(error.code, 'scope_not_granted');
    assert.match(error.message, /alice@example\.com has not granted cloud-platform/);
    assert.match(error.hint, /tokend login --client-secrets .*client_secrets\.json --scopes bigquery,cloud-platform/);
  });

  test('tokend token, env and --version open none of the daemon\'s packages (fastify, pino, google-auth-library, the keychain binding)', { skip: skipUnless(requirements.strace) }, async () => {
    const DAEMON_PACKAGES = /node_modules\/(fastify|pino|google-auth-library|gaxios|@napi-rs|undici)\//;
    const opened = async (args: string[]) => {
      const trace = join(setup.dirs.root, `open-${args[0]}.trace`);
      await execFileAsync('strace', ['-f', '-qq', '-e', 'trace=open,openat', '-o', trace, process.execPath, BIN, ...args], { env: setup.env, timeout: 20_000 });
      return readFileSync(trace, 'utf8').split('\n').filter((row) => row.includes('node_modules/'));
    };
    for (const args of [['token', '--scopes', 'bigquery'], ['env'], ['--version']]) {
      assert.deepEqual((await opened(args)).filter((row) => DAEMON_PACKAGES.test(row)), [], args.join(' '));
    }
    // The control: the trace does see a command that loads the daemon.
    assert.ok((await opened(['serve', '--help'])).some((row) => /node_modules\/fastify\//.test(row)), 'serve --help opens fastify');
  });

  test('re-consent with every scope replaces the grant; narrower tokens carry exactly what was asked', async () => {
    const result = await loginByPasteBack(setup, 'bigquery,cloud-platform');
    assert.equal(result.code, 0, result.stderr);
    for (const scopes of ['bigquery', 'cloud-platform', 'bigquery,cloud-platform']) {
      const response = await getOverSocket(setup.dirs.socket, tokenPath(scopes));
      assert.equal(response.status, 200, response.body);
      assert.equal(response.headers['content-type'], 'application/json');
      const body = JSON.parse(response.body);
      assert.equal(body.token_type, 'Bearer');
      assert.ok(Number.isInteger(body.expires_in) && body.expires_in > 3500, 'Number.isInteger(body.expires_in) && body.expires_in > 3500');
      const introspection = await standin.introspect(body.access_token);
      assert.equal(introspection.active, true);
      assert.deepEqual(introspection.scope?.split(' ').sort(), scopes.split(',').map((s) => G + s).sort());
    }
  });

  test('a scope never granted: 403 naming the scope and the login that grants it', async () => {
    const response = await getOverSocket(setup.dirs.socket, tokenPath('devstorage.read_only'));
    assert.equal(response.status, 403);
    assert.equal(response.headers['metadata-flavor'], 'Google');
    const { error } = JSON.parse(response.body);
    assert.match(error.message, /has not granted devstorage\.read_only/);
    assert.match(error.hint, /--scopes bigquery,cloud-platform,devstorage\.read_only/);
    const cli = await runCli(['token', '--scopes', 'devstorage.read_only'], setup.env);
    assert.equal(cli.code, 6);
    assert.equal(cli.stdout, '');
    assert.match(cli.stderr, /^tokend: alice@example\.com has not granted devstorage\.read_only\nhint: run `tokend login/);
  });

  test('200 concurrent requests for an uncached scope set make exactly one upstream refresh', async () => {
    standin.resetStats();
    const scopes = `${G}bigquery ${G}cloud-platform openid`;
    const responses = await Promise.all(Array.from({ length: 200 }, () => getOverSocket(setup.dirs.socket, tokenPath(scopes))));
    assert.ok(responses.every((r) => r.status === 200), responses.find((r) => r.status !== 200)?.body);
    assert.equal(new Set(responses.map((r) => JSON.parse(r.body).access_token)).size, 1);
    assert.equal(standin.stats.refreshGrants, 1);
  });

  test('upstream answers 503 twice, then 200: the caller gets its token', async () => {
    standin.resetStats();
    standin.faults.push({ status: 503 }, { status: 503 });
    const result = await runCli(['token', '--scopes', 'cloud-platform,openid', '--json'], setup.env);
    assert.equal(result.code, 0, result.stderr);
    const body = JSON.parse(result.stdout);
    assert.equal((await standin.introspect(body.access_token)).active, true);
    assert.equal(standin.stats.refreshGrants, 3);
  });

  test('status shows the store, the account, its scopes and cached tokens', async () => {
    const result = await runCli(['status', '--json'], setup.env);
    assert.equal(result.code, 0, result.stderr);
    const status = JSON.parse(result.stdout);
    assert.equal(status.store.kind, 'file');
    assert.match(status.store.description, /encrypted/);
    assert.equal(status.accounts[0].email, 'alice@example.com');
    assert.deepEqual(status.accounts[0].health, { state: 'ok' });
    assert.ok(status.accounts[0].tokens.length >= 3, 'status.accounts[0].tokens.length >= 3');
    const human = await runCli(['status'], setup.env);
    assert.match(human.stdout, /alice@example\.com \(default\): ok/);
    assert.match(human.stdout, /granted: bigquery, cloud-platform/);
    assert.match(human.stdout, /^metadata: off \(.*TOKEND_METADATA_PORT=8085/m);
    assert.equal(status.daemon.metadata, null);
  });
});

describe('shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal} lets a request in flight finish, then removes the socket and exits 0`, async () => {
      const setup = await startDaemon(`shutdown-${signal}`, { TOKEND_STORE: 'memory' });
      const login = await loginByPasteBack(setup, 'bigquery');
      assert.equal(login.code, 0, login.stderr);
      standin.resetStats();
      standin.faults.push({ delayMs: 1500 });
      const inFlight = getOverSocket(setup.dirs.socket, tokenPath('bigquery'));
      // Wait for the event, not for time: the refresh has reached the stand-in.
      while (standin.stats.refreshGrants === 0) await new Promise((resolve) => setImmediate(resolve));
      setup.daemon.child.kill(signal);
      const response = await inFlight;
      assert.equal(response.status, 200, response.body);
      assert.ok(JSON.parse(response.body).access_token, 'JSON.parse(response.body).access_token');
      assert.equal(await setup.daemon.exited, 0);
      assert.throws(() => statSync(setup.dirs.socket), /ENOENT/);
      assert.match(setup.daemon.log(), /"event":"stopped"/);
    });
  }
});

describe('restart and revocation', () => {
  test('after a restart, accounts load from the store and tokens are served without a new consent', async () => {
    const first = await startDaemon('restart-1');
    const login = await loginByPasteBack(first, 'bigquery');
    assert.equal(login.code, 0, login.stderr);
    assert.equal(await first.daemon.stop(), 0);
    const secrets = readFileSync(join(first.dirs.configDir, 'secrets.json'), 'utf8');
    assert.match(secrets, /"ciphertext"/);
    assert.doesNotMatch(secrets, /alice@example\.com|refresh/);

    standin.resetStats();
    const second = await startDaemonProcess({ name: 'restart-2', env: first.env, socket: first.dirs.socket });
    try {
      const token = await runCli(['token', '--scopes', 'bigquery'], first.env);
      assert.equal(token.code, 0, token.stderr);
      assert.equal((await standin.introspect(token.stdout.trim())).active, true);
      assert.equal(standin.stats.codeGrants, 0, 'no new consent');
      assert.equal(standin.stats.refreshGrants, 1);
    } finally {
      await second.stop();
    }
  });

  test('a refresh token revoked upstream: marked, shown in status, callers told to consent again, upstream left alone', async () => {
    const setup = await startDaemon('revoked', { TOKEND_FILE_PASSPHRASE: '' });
    try {
      const login = await loginByPasteBack(setup, 'bigquery,cloud-platform');
      assert.equal(login.code, 0, login.stderr);
      const stored = JSON.parse(readFileSync(join(setup.dirs.configDir, 'secrets.json'), 'utf8'));
      const record = JSON.parse(stored.entries.tokend['alice@example.com']);
      // The user removes tokend's access in their Google account.
      const revoked = await fetch(standin.revokeUri, {
        method: 'POST',
        body: new URLSearchParams({ token: record.refresh_token, client_id: standin.clientId, client_secret: standin.clientSecret }),
      });
      assert.equal(revoked.status, 200);

      standin.resetStats();
      const first = await runCli(['token', '--scopes', 'bigquery'], setup.env);
      assert.equal(first.code, 5, first.stderr);
      assert.match(first.stderr, /alice@example\.com must consent again: the refresh token has expired or was revoked/);
      assert.match(first.stderr, /hint: run `tokend login --client-secrets /);
      const second = await getOverSocket(setup.dirs.socket, tokenPath('cloud-platform'));
      assert.equal(second.status, 403);
      assert.equal(JSON.parse(second.body).error.code, 'consent_required');
      assert.equal(standin.stats.refreshGrants, 1, 'no upstream call after the first invalid_grant');

      const status = await runCli(['status'], setup.env);
      assert.match(status.stdout, /alice@example\.com \(default\): CONSENT REQUIRED since .*: the refresh token has expired or was revoked/);

      // Consenting again heals the account.
      const again = await loginByPasteBack(setup, 'bigquery,cloud-platform');
      assert.equal(again.code, 0, again.stderr);
      assert.equal((await runCli(['token', '--scopes', 'bigquery'], setup.env)).code, 0);
    } finally {
      await setup.daemon.stop();
    }
  });

  test('a consent declined in the browser fails clearly and stores nothing', async () => {
    const setup = await startDaemon('denied', { TOKEND_STORE: 'memory' });
    try {
      const cli = startCli(['login', '--client-secrets', setup.clientFile, '--scopes', 'bigquery'], setup.env);
      const [, authUrl] = await cli.waitForStderr(AUTH_URL_LINE);
      const page = await consentViaHttp(authUrl!, { deny: true });
      assert.equal(page.status, 403);
      assert.match(page.body, /Access denied/);
      const result = await cli.result;
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /access was denied on the consent screen/);
      const token = await runCli(['token'], setup.env);
      assert.equal(token.code, 4);
    } finally {
      await setup.daemon.stop();
    }
  });
});

describe('without a Secret Service', () => {
  test('--store keychain fails fast, saying why and what to do', async () => {
    const dirs = daemonDirs();
    const started = Date.now();
    const result = await runCli(['serve', '--socket', dirs.socket, '--store', 'keychain'], {
      ...noSecretServiceEnv(),
      TOKEND_CONFIG_DIR: dirs.configDir,
    });
    const elapsed = Date.now() - started;
    assert.equal(result.code, 8, result.stderr);
    assert.match(result.stderr, /^tokend: .*Secret Service/m);
    assert.match(result.stderr, /^hint: .*(gnome-keyring|--store file)/m);
    assert.ok(elapsed < 8000, `took ${elapsed} ms`);
    assert.throws(() => statSync(dirs.socket), /ENOENT/, 'nothing listens');
  });

  test('auto falls back to the file store and says so in the log, in login and in status', async () => {
    const setup = await startDaemon('auto-fallback', { ...noSecretServiceEnv(), TOKEND_STORE: 'auto' });
    try {
      const fallback = setup.daemon
        .log()
        .split('\n')
        .filter((line) => line.includes('"level":40'))
        .map((line) => JSON.parse(line));
      assert.equal(fallback.length, 1, setup.daemon.log());
      assert.equal(fallback[0].event, 'store_fallback');
      assert.match(fallback[0].msg, /file/);
      const status = await runCli(['status'], setup.env);
      assert.match(status.stdout, /^store: {4}file \/\S+\/secrets\.json \(encrypted\)$/m, 'the kind is not repeated');
      assert.match(status.stdout, /^warning: /m);
      const login = await loginByPasteBack(setup, 'bigquery');
      assert.equal(login.code, 0, login.stderr);
      assert.match(login.stderr, /^warning: .*keychain/im);
    } finally {
      await setup.daemon.stop();
    }
  });
});
