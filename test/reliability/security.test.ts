/**
 * The security suite: the real daemon (encrypted file store, metadata listener, a sign-in open) and a
 * real second local user (`nobody`, through setpriv) who tries everything it can: connect to each
 * listener, read each file, read the daemon's memory and environment, and take every path a client of
 * the owner's uses. Then what a web page or a relay could send, as the owner's own browser would.
 * Each attack is counted; not one may succeed. (Login CSRF, descriptor exhaustion, socket squatting
 * after the daemon is gone and directory swaps are in test/e2e/cross-user.test.ts.)
 */
import assert from 'node:assert/strict';
import { lstatSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AUTH_URL_LINE, daemonDirs, daemonEnv, freePort, loginByPasteBack, runCli, startCli, startDaemonProcess, stopAllDaemons, type RunningCli } from '../helpers/daemon-process.js';
import { recordFigure } from '../helpers/figures.js';
import { getMetadata } from '../helpers/metadata-client.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { runAsOtherUser, skipUnlessSecondUser } from '../helpers/second-user.js';

const V1 = '/computeMetadata/v1';
const TOKEN = `${V1}/instance/service-accounts/default/token`;
const ATTEMPTS = 20;

/**
 * As the other user: every attack of TARGETS (JSON), ATTEMPTS times where repeating means anything.
 * Prints {name: {attempts, successes, how}} as JSON. A success is anything the attacker gets: a
 * connection that answers, a byte of a file, a listing, a path created.
 */
const ATTACK = `
import { connect } from 'node:net';
import { mkdirSync, readdirSync, readFileSync, openSync, closeSync, writeFileSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
const t = JSON.parse(process.argv[1]);
const out = {};
const tally = (name) => (out[name] ??= { attempts: 0, successes: 0, how: [] });
const attempt = async (name, fn) => {
  const entry = tally(name);
  entry.attempts++;
  try {
    const got = await fn();
    if (got) { entry.successes++; entry.how.push(String(got).slice(0, 80)); }
  } catch {}
};
const askOverTcp = (port, request) => new Promise((resolve) => {
  let data = '';
  const socket = connect(port, '127.0.0.1', () => socket.write(request));
  socket.on('data', (chunk) => (data += chunk));
  socket.on('close', () => resolve(data));
  socket.on('error', () => resolve(data));
  setTimeout(() => { socket.destroy(); resolve(data); }, 2000);
});
const askOverUnix = (path) => new Promise((resolve, reject) => {
  const socket = connect(path, () => { socket.destroy(); resolve('connected'); });
  socket.on('error', reject);
});
for (let i = 0; i < t.attempts; i++) {
  await attempt('connect to the Unix socket', () => askOverUnix(t.socket));
  await attempt('ask the metadata listener for a token', async () => {
    const answer = await askOverTcp(t.metadataPort, 'GET ${TOKEN} HTTP/1.1\\r\\nhost: 127.0.0.1:' + t.metadataPort + '\\r\\nmetadata-flavor: Google\\r\\n\\r\\n');
    return answer.length > 0 ? answer : undefined;
  });
  await attempt('deliver a redirect to the consent listener', async () => {
    const answer = await askOverTcp(t.consentPort, 'GET /oauth2callback?code=attacker&state=guess HTTP/1.1\\r\\nhost: 127.0.0.1\\r\\n\\r\\n');
    return answer.length > 0 ? answer : undefined;
  });
}
for (const file of t.files) await attempt('read a file of the daemon', () => readFileSync(file, 'latin1').slice(0, 20) || 'empty but readable');
for (const dir of t.dirs) await attempt('list a directory of the daemon', () => readdirSync(dir).join(',') || 'listed');
for (const entry of ['environ', 'mem', 'maps', 'fd', 'cwd', 'root']) {
  await attempt('read the daemon process', () => {
    const path = '/proc/' + t.pid + '/' + entry;
    if (entry === 'fd' || entry === 'cwd' || entry === 'root') return readdirSync(path).join(',') || 'listed';
    const fd = openSync(path, 'r');
    closeSync(fd);
    return entry === 'mem' ? 'opened' : readFileSync(path, 'latin1').slice(0, 40) || 'opened';
  });
}
for (const path of t.squat) {
  await attempt('take a path a client uses', () => { mkdirSync(path); return 'made directory ' + path; });
  await attempt('take a path a client uses', () => { writeFileSync(path, 'x', { flag: 'wx' }); return 'made file ' + path; });
  await attempt('take a path a client uses', () => { symlinkSync('/tmp', path); return 'made link ' + path; });
  await attempt('take a path a client uses', () => new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(path, () => { server.close(); resolve('bound ' + path); });
  }));
}
console.log(JSON.stringify(out));
`;

let standin: StandinHandle;
let env: NodeJS.ProcessEnv;
let dirs: ReturnType<typeof daemonDirs>;
let port: number;
let pid: number;

before(async () => {
  standin = await startStandin();
  dirs = daemonDirs();
  port = await freePort();
  env = daemonEnv(dirs, { TOKEND_STORE: 'file', TOKEND_FILE_PASSPHRASE: 'security-suite passphrase 7f3a', TOKEND_METADATA_PORT: String(port), TOKEND_PROJECT_NUMBER: '123456789012', BROWSER: 'false' });
  const daemon = await startDaemonProcess({ name: 'security', env, socket: dirs.socket });
  pid = daemon.child.pid!;
  assert.equal((await loginByPasteBack(['--client-secrets', standin.writeClientSecrets(dirs.root), '--scopes', 'bigquery,cloud-platform'], env)).code, 0);
});
after(async () => {
  await stopAllDaemons();
  await standin?.stop();
});

describe('security', () => {
  test('modes and ownership: socket directory 0700, socket 0600, config directory 0700, every file in it 0600, all the owner\'s', () => {
    const uid = process.getuid!();
    const expect = [
      [dirname(dirs.socket), 0o700, 'directory'],
      [dirs.socket, 0o600, 'socket'],
      [dirs.configDir, 0o700, 'directory'],
      ...readdirSync(dirs.configDir).map((name) => [join(dirs.configDir, name), 0o600, 'file'] as const),
    ] as const;
    assert.ok(expect.length >= 5, `the config directory holds ${readdirSync(dirs.configDir).join(', ')}`);
    for (const [path, mode, kind] of expect) {
      const info = lstatSync(path);
      assert.equal(info.mode & 0o777, mode, `${path} is ${(info.mode & 0o777).toString(8)}`);
      assert.equal(info.uid, uid, `${path} belongs to the owner`);
      assert.equal(kind === 'directory' ? info.isDirectory() : kind === 'socket' ? info.isSocket() : info.isFile(), true, `${path} is a ${kind}`);
    }
  });

  test('another local user gets nothing: not the socket, the listeners, the files, the process, nor any path a client uses', { skip: skipUnlessSecondUser() }, async () => {
    let login: RunningCli | undefined;
    try {
      login = startCli(['login', '--client-secrets', join(dirs.root, 'client_secrets.json'), '--scopes', 'bigquery', '--no-browser'], env);
      const [, authUrl] = await login.waitForStderr(AUTH_URL_LINE);
      const consentPort = Number(new URL(new URL(authUrl!).searchParams.get('redirect_uri')!).port);
      const targets = {
        attempts: ATTEMPTS,
        socket: dirs.socket,
        metadataPort: port,
        consentPort,
        pid,
        files: [...readdirSync(dirs.configDir).map((name) => join(dirs.configDir, name)), join(dirs.root, 'client_secrets.json')],
        dirs: [dirs.configDir, dirname(dirs.socket), dirs.root],
        // Where the owner's clients look: the socket, its directory, the config directory, and what a
        // client would create next to them.
        squat: [dirs.socket, dirname(dirs.socket), join(dirname(dirs.socket), 'tokend.sock.new'), dirs.configDir, join(dirs.configDir, 'config.json'), join(dirs.root, 'run2')],
      };
      const result = await runAsOtherUser(ATTACK, [JSON.stringify(targets)], 60_000);
      assert.equal(result.code, 0, result.stderr);
      const attacks = JSON.parse(result.stdout) as Record<string, { attempts: number; successes: number; how: string[] }>;
      for (const [name, { attempts, successes }] of Object.entries(attacks)) recordFigure({ kind: 'attack', name, attempts, succeeded: successes > 0 });
      const succeeded = Object.entries(attacks).filter(([, a]) => a.successes > 0);
      assert.deepEqual(succeeded, [], 'no attack succeeded');
      assert.ok(Object.keys(attacks).length >= 7, `the attacks ran: ${Object.keys(attacks).join(', ')}`);
      assert.equal(login.child.exitCode, null, 'the owner\'s sign-in is still open');
      // The owner is still served, over both listeners.
      assert.equal((await getMetadata(port, `${TOKEN}?scopes=bigquery`)).status, 200);
      assert.equal((await runCli(['token', '--scopes', 'bigquery'], env)).code, 0);
    } finally {
      login?.child.kill('SIGINT');
      await login?.result.catch(() => undefined);
    }
  });

  test('what a web page, a DNS-rebinding page or a relay can make a client send is refused, every time', async () => {
    const attempts: Array<[string, Record<string, string>, string?]> = [
      ['a fetch from a web page (Origin)', { origin: 'https://evil.example' }],
      ['a fetch from a local file page (Origin: null)', { origin: 'null' }],
      ['a CORS preflight', { origin: 'https://evil.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'metadata-flavor' }, 'OPTIONS'],
      ['a DNS-rebinding page (its own Host)', { host: `evil.example:${port}` }],
      ['a rebinding page on localhost\'s other names', { host: `localhost.evil.example:${port}` }],
      ['a relay (Forwarded)', { forwarded: 'for=203.0.113.5' }],
      ['a relay (X-Forwarded-For)', { 'x-forwarded-for': '203.0.113.5' }],
      ['a relay (Via)', { via: '1.1 relay' }],
      ['a relay (X-Real-IP)', { 'x-real-ip': '203.0.113.5' }],
      ['a server-side fetch without the flavor header', { 'metadata-flavor': '' }],
    ];
    for (const [name, headers, method] of attempts) {
      let successes = 0;
      for (let i = 0; i < ATTEMPTS; i++) {
        const answer = await getMetadata(port, `${TOKEN}?scopes=bigquery`, headers, method ?? 'GET');
        if (answer.status < 400 || answer.body.includes('access_token') || answer.headers['access-control-allow-origin'] !== undefined) successes++;
      }
      recordFigure({ kind: 'attack', name: `browser or relay: ${name}`, attempts: ATTEMPTS, succeeded: successes > 0 });
      assert.equal(successes, 0, name);
    }
  });

  test('the passphrase reaches no child of `tokend exec` (test/final searches its output for every other secret)', async () => {
    const printed = await runCli(['exec', '--scopes', 'bigquery', '--', 'env'], env);
    assert.equal(printed.code, 0, printed.stderr);
    assert.doesNotMatch(printed.stdout, /TOKEND_FILE_PASSPHRASE|security-suite passphrase/);
    assert.match(printed.stdout, /^GCE_METADATA_HOST=|^TOKEND_SOCKET=/m, 'the child got the environment');
    // Every other secret the stand-in issued is searched for in this output by test/final.
    assert.ok(statSync(dirs.socket).isSocket(), 'the daemon is still there');
  });
});
