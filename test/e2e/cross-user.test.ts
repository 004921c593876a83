/**
 * Attacks by another local user, performed by a real second user (`nobody`, through setpriv) against
 * the owner's real daemon and CLI. Each test is named after the hole it closes (issue 5).
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TokendClient } from '../../src/client/socket-client.js';
import { DaemonUnreachableError } from '../../src/errors.js';
import { after, before, describe, test } from 'node:test';
import { consentViaHttp, obtainRedirectUrl } from '../helpers/consent-driver.js';
import { AUTH_URL_LINE, daemonDirs, daemonEnv, runCli, stopAllDaemons, startCli, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { OTHER_UID, runAsOtherUser, skipUnlessSecondUser, startAsOtherUser } from '../helpers/second-user.js';


/**
 * Watches every process's argv, as any local user may, for what the browser opener of the sign-in on
 * PORT was given; prints it, and whether any argv holds an authorization URL for CLIENT_ID.
 */
const READ_CONSENT_URL_FROM_PROC = `
import { readdirSync, readFileSync } from 'node:fs';
const [clientId, port] = process.argv.slice(1);
const deadline = Date.now() + 10_000;
while (Date.now() < deadline) {
  const args = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\\d+$/.test(name))) {
    try { args.push(...readFileSync('/proc/' + pid + '/cmdline', 'latin1').split('\\0')); } catch {}
  }
  const opened = args.find((arg) => arg.startsWith('http://127.0.0.1:' + port + '/'));
  if (opened) {
    console.log(JSON.stringify({ opened, leaked: args.some((arg) => arg.includes('code_challenge=') && arg.includes(clientId)) }));
    process.exit(0);
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
}
process.exit(1);
`;

/**
 * Requests each URL given; prints `answered STATUS` or `refused CODE` for each. A request the daemon
 * dropped can leave fetch waiting on nothing but its (unref'd) timeout: a ref'd timer keeps the script
 * alive until that fires.
 */
const DELIVER = `
const alive = setInterval(() => {}, 1_000);
for (const url of process.argv.slice(1)) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    console.log('answered ' + response.status);
  } catch (error) {
    console.log('refused ' + (error.cause?.code ?? error.name));
  }
}
clearInterval(alive);
`;

/** Opens COUNT connections to PORT and holds them; prints how many the other side closed. */
const HOLD_CONNECTIONS = `
import { connect } from 'node:net';
const [port, count] = process.argv.slice(1).map(Number);
let opened = 0, closedByPeer = 0, failed = 0;
const sockets = [];
for (let i = 0; i < count; i++) {
  await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('connect', () => { opened++; resolve(); });
    socket.on('error', () => { failed++; resolve(); });
    socket.on('close', () => { closedByPeer++; });
    socket.resume();
    sockets.push(socket);
  });
}
// Give the daemon a moment to deal with the last ones, then report and keep holding what is left.
await new Promise((resolve) => setTimeout(resolve, 1_000));
console.log(JSON.stringify({ opened, closedByPeer, failed }));
setInterval(() => {}, 1_000);
`;

/** Creates DIR and serves tokens of the attacker's choosing on DIR/tokend.sock, open to everyone. */
const SQUAT_SOCKET = `
import { chmodSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
const [dir] = process.argv.slice(1);
mkdirSync(dir, { mode: 0o777 });
chmodSync(dir, 0o777);
const server = createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.setHeader('metadata-flavor', 'Google');
  res.end(JSON.stringify({ access_token: 'ATTACKER-CONTROLLED-TOKEN', expires_in: 3599, token_type: 'Bearer', account: 'x', scopes: [] }));
});
server.listen(dir + '/tokend.sock', () => {
  chmodSync(dir + '/tokend.sock', 0o777);
  console.log('ready');
});
`;

/** Replaces the directory at PATH by a symlink to a directory the attacker owns (mode 0777). */
const SWAP_FOR_SYMLINK = `
import { chmodSync, mkdtempSync, renameSync, symlinkSync } from 'node:fs';
const [path] = process.argv.slice(1);
const mine = mkdtempSync('/tmp/attacker-');
chmodSync(mine, 0o777);
renameSync(path, path + '.moved');
symlinkSync(mine, path);
console.log(mine);
`;

/** A directory like /tmp: anyone may create entries (sticky unless told otherwise). */
function sharedDir(mode = 0o1777): string {
  const dir = mkdtempSync(join(tmpdir(), 'tokend-shared-'));
  chmodSync(dir, mode);
  return dir;
}

let standin: StandinHandle;
before(async () => {
  standin = await startStandin();
});
after(async () => {
  await stopAllDaemons();
  await standin?.stop();
});

async function startOwnerDaemon(name: string, browser: string) {
  const dirs = daemonDirs();
  const env = daemonEnv(dirs, { TOKEND_STORE: 'memory', BROWSER: browser });
  const daemon = await startDaemonProcess({ name, env, socket: dirs.socket });
  return { env, daemon, clientFile: standin.writeClientSecrets(dirs.root) };
}

function openFds(daemon: DaemonProcess): number {
  return readdirSync(`/proc/${daemon.child.pid}/fd`).length;
}

describe('another local user against the owner\'s daemon', { skip: skipUnlessSecondUser() }, () => {
  test('regression: login CSRF — a consent URL read from /proc cannot be used to complete or end the owner\'s sign-in', async () => {
    // The opener stays alive, as xdg-open and browsers do, with the URL in its argv.
    const { env, daemon, clientFile } = await startOwnerDaemon('csrf', 'sleep 15; :');
    try {
      const cli = startCli(['login', '--client-secrets', clientFile, '--scopes', 'bigquery'], env);
      const [, authUrl] = await cli.waitForStderr(AUTH_URL_LINE);
      const callbackPort = new URL(new URL(authUrl!).searchParams.get('redirect_uri')!).port;

      // What another user can see: the opener's argv holds only the local start address, no state.
      const spied = await runAsOtherUser(READ_CONSENT_URL_FROM_PROC, [standin.clientId, callbackPort]);
      assert.equal(spied.code, 0, `the other user found no opener in any argv: ${spied.stderr}`);
      const { opened, leaked } = JSON.parse(spied.stdout);
      assert.match(opened, /\/start\//);
      assert.equal(leaked, false, 'no argv holds the authorization URL');
      // Fetching that start address (to learn the state from its redirect) is refused too.
      assert.match((await runAsOtherUser(DELIVER, [opened])).stdout, /^refused /);

      // Assume the attacker has the state anyway (the owner's terminal shows the URL).
      const state = new URL(authUrl!).searchParams.get('state')!;
      assert.ok(state.length > 0, 'state.length > 0');

      // The attacker consents with their own account, bound to the owner's public code_challenge…
      const forged = new URL(await obtainRedirectUrl(authUrl!, { login: 'mallory@evil.example' }));
      const callback = `${forged.origin}${forged.pathname}`;
      // …and tries to deliver it, or to end the sign-in with an error or a bogus code.
      const attempts = [
        forged.href,
        `${callback}?state=${encodeURIComponent(state)}&error=access_denied`,
        `${callback}?state=${encodeURIComponent(state)}&code=bogus`,
      ];
      const delivered = await runAsOtherUser(DELIVER, attempts);
      assert.deepEqual(
        delivered.stdout.trim().split('\n').map((line) => line.split(' ')[0]),
        ['refused', 'refused', 'refused'],
        `exit ${delivered.code}\n${delivered.stdout}\n${delivered.stderr}`,
      );
      assert.equal(cli.child.exitCode, null, 'the owner\'s sign-in is still open');

      // The owner's own browser completes it.
      const owner = await consentViaHttp(opened);
      assert.equal(owner.status, 200, owner.body);
      const result = await cli.result;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^Logged in as alice@example\.com$/m);
      assert.match(result.stderr, /alice@example\.com is now the default account/);

      const status = JSON.parse((await runCli(['status', '--json'], env)).stdout);
      assert.deepEqual(
        status.accounts.map((a: { email: string; default: boolean }) => [a.email, a.default]),
        [['alice@example.com', true]],
      );
      assert.match(daemon.log(), new RegExp(`"event":"connection_refused".*"uid":${OTHER_UID}`));
    } finally {
      await daemon.stop();
    }
  });

  test('regression: fd exhaustion — another user\'s connections to the consent listener are dropped at once; the socket keeps answering', async () => {
    const { env, daemon, clientFile } = await startOwnerDaemon('fd-flood', 'false');
    const cli = startCli(['login', '--client-secrets', clientFile, '--scopes', 'bigquery'], env);
    let flood: ReturnType<typeof startAsOtherUser> | undefined;
    try {
      const [, authUrl] = await cli.waitForStderr(AUTH_URL_LINE);
      const port = new URL(new URL(authUrl!).searchParams.get('redirect_uri')!).port;
      const baseline = openFds(daemon);

      flood = startAsOtherUser(HOLD_CONNECTIONS, [port, '2000']);
      const [report] = await flood.waitFor(/^\{.*\}$/m, 60_000);
      const { opened, closedByPeer } = JSON.parse(report);
      assert.ok(opened > 1500, `the flood opened ${opened} connections`);
      assert.equal(closedByPeer, opened, 'the daemon closed every connection of the other user');
      assert.ok(openFds(daemon) < baseline + 20, `the daemon holds ${openFds(daemon)} fds (baseline ${baseline})`);

      const status = await runCli(['status'], env);
      assert.equal(status.code, 0, status.stderr);
      assert.equal(cli.child.exitCode, null, 'the sign-in is still open');
    } finally {
      await flood?.stop();
      cli.child.kill('SIGINT');
      await cli.result.catch(() => undefined);
      await daemon.stop();
    }
  });

  test('regression: socket squatting — a long-running client is not handed to another user\'s socket once the daemon is gone', async () => {
    const shared = sharedDir();
    const dir = join(shared, 'tokend-0');
    const socket = join(dir, 'tokend.sock');
    const env = daemonEnv({ socket, configDir: join(shared, 'config') }, { TOKEND_STORE: 'memory' });
    const daemon = await startDaemonProcess({ name: 'squat', env, socket });
    const client = new TokendClient({ socketPath: socket });
    assert.equal(((await client.status()) as { daemon: { pid: number } }).daemon.pid, daemon.child.pid);
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true }); // a reboot, or a cleaner of /tmp

    const squatter = startAsOtherUser(SQUAT_SOCKET, [dir]);
    try {
      await squatter.waitFor(/ready/);
      await assert.rejects(client.getToken({ scopes: 'bigquery' }), (error: unknown) => {
        assert.ok(error instanceof DaemonUnreachableError, 'error instanceof DaemonUnreachableError');
        assert.match(error.message, new RegExp(`owned by uid ${OTHER_UID}`));
        return true;
      });
      const cli = await runCli(['token', '--scopes', 'bigquery'], env);
      assert.notEqual(cli.code, 0);
      assert.doesNotMatch(cli.stdout, /ATTACKER/);
      assert.match(cli.stderr, /refusing to talk to/);
      const serve = await runCli(['serve'], env);
      assert.notEqual(serve.code, 0);
      assert.match(serve.stderr, new RegExp(`owned by uid ${OTHER_UID}`));
    } finally {
      await squatter.stop();
    }
  });

  test('regression: config directory swapped for a symlink — nothing is written into the other user\'s directory, and the daemon keeps running', async () => {
    const shared = sharedDir(0o755); // loosened to 0777 below, once the daemon runs
    const configDir = join(shared, 'config');
    const socketDir = mkdtempSync(join(tmpdir(), 'tokend-run-'));
    const socket = join(socketDir, 'tokend.sock');
    const env = daemonEnv({ socket, configDir }, { TOKEND_STORE: 'file', TOKEND_FILE_PASSPHRASE: 'correct horse battery staple', BROWSER: 'false' });
    const daemon = await startDaemonProcess({ name: 'config-swap', env, socket });
    try {
      const clientFile = standin.writeClientSecrets(socketDir);
      const cli = startCli(['login', '--client-secrets', clientFile, '--scopes', 'bigquery', '--no-browser'], env);
      const [, authUrl] = await cli.waitForStderr(AUTH_URL_LINE);
      cli.writeStdin(`${await obtainRedirectUrl(authUrl!)}\n`);
      assert.equal((await cli.result).code, 0);
      assert.ok(existsSync(join(configDir, 'secrets.json')), 'existsSync(join(configDir, \'secrets.json\'))');

      chmodSync(shared, 0o777); // someone loosens the parent: others may now rename entries in it
      const swapped = await runAsOtherUser(SWAP_FOR_SYMLINK, [configDir]);
      assert.equal(swapped.code, 0, swapped.stderr);
      const attackerDir = swapped.stdout.trim();

      const logout = await runCli(['logout', '--no-revoke'], env);
      assert.notEqual(logout.code, 0);
      assert.match(logout.stderr, /was replaced while tokend was running; nothing was written/);
      assert.deepEqual(readdirSync(attackerDir), [], 'no secret landed in the other user\'s directory');
      assert.equal((await runCli(['status'], env)).code, 0, 'the daemon keeps running');

      // A new daemon refuses the parent others can write, and the link.
      await daemon.stop();
      const again = await runCli(['serve'], env);
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /is writable by other users \(mode 0777\), who could replace/);
      chmodSync(shared, 0o755);
      const linked = await runCli(['serve'], env);
      assert.notEqual(linked.code, 0);
      assert.match(linked.stderr, /is a symbolic link/);
    } finally {
      await daemon.stop();
    }
  });
});
