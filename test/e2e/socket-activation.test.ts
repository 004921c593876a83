/**
 * systemd socket activation with the real daemon: listening sockets bound by someone else and passed
 * from fd 3 with LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES — by hand exactly as systemd does it, and
 * through systemd-socket-activate — serve tokens on both, and the Unix socket outlives the daemon.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BIN, daemonDirs, daemonEnv, freePort, loginByPasteBack, runCli } from '../helpers/daemon-process.js';
import { judge, report, tally } from '../helpers/bad-input.js';
import { getMetadata } from '../helpers/metadata-client.js';
import { exchange, request } from '../helpers/raw-http.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { requirements, skipUnless } from '../helpers/requirements.js';

const G = 'https://www.googleapis.com/auth/';
let oauth: StandinHandle;
before(async () => (oauth = await startStandin()));
after(async () => oauth?.stop());

async function waitForLog(daemon: ChildProcess, log: () => string, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 200 && !pattern.test(log()); i++) {
    if (daemon.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.match(log(), pattern);
}

/** Inherited listeners answer what Node's parser refuses as the daemon's own do: in tokend's error format. */
async function badInputOverBoth(socketPath: string, port: number): Promise<void> {
  const t = tally('socket-activated listeners');
  for (const [target, host] of [[{ socketPath }, 'localhost'], [{ port }, `127.0.0.1:${port}`]] as const) {
    for (const [label, bytes, status] of [
      ['not HTTP', 'hello\r\n\r\n', 400],
      ['CONNECT', `CONNECT 127.0.0.1:443 HTTP/1.1\r\nhost: ${host}\r\n\r\n`, 405],
      ['a header of 20 KiB', request('/', { host, 'x-big': 'a'.repeat(20_480) }), 431],
      ['an unknown Expect', request('/', { host, expect: 'teapot' }), 417],
      ['a path that is not served', request('/../../etc/passwd', { host }), 404],
    ] as const) {
      judge(t, `${'socketPath' in target ? 'unix' : 'tcp'}: ${label}`, await exchange(target, bytes), { format: 'json', statuses: [status] });
    }
  }
  report(t);
}

/** Logs in over the activated socket, then checks a token on each socket is live and narrowed. */
async function tokensOverBoth(env: NodeJS.ProcessEnv, port: number): Promise<void> {
  const clientFile = oauth.writeClientSecrets(env.TOKEND_CONFIG_DIR!.replace(/config$/, ''));
  assert.equal((await loginByPasteBack(['--client-secrets', clientFile, '--scopes', 'bigquery,cloud-platform', '--default'], env)).code, 0);
  const overUnix = await runCli(['token', '--scopes', 'bigquery'], env);
  assert.equal(overUnix.code, 0, overUnix.stderr);
  assert.equal((await oauth.introspect(overUnix.stdout.trim())).scope, `${G}bigquery`);
  const overTcp = await getMetadata(port, '/computeMetadata/v1/instance/service-accounts/default/token?scopes=bigquery');
  assert.equal(overTcp.status, 200, overTcp.body);
  assert.equal((await oauth.introspect(JSON.parse(overTcp.body).access_token)).active, true);
}

async function stop(daemon: ChildProcess): Promise<number | null> {
  daemon.kill('SIGTERM');
  return daemon.exitCode ?? new Promise((resolve) => daemon.once('exit', (code) => resolve(code)));
}

describe('socket activation', () => {
  test('pre-bound sockets on fd 3 and 4, passed as systemd passes them: tokens over both; the Unix socket is left as it was', async () => {
    const dirs = daemonDirs();
    mkdirSync(join(dirs.root, 'run'), { mode: 0o700 });
    const port = await freePort();
    const env = daemonEnv(dirs, { TOKEND_STORE: 'memory', BROWSER: 'false' });
    // As systemd does it: bind and listen in the process that then becomes the daemon (exec keeps the
    // pid, so LISTEN_PID is the daemon's), the sockets on fd 3 and 4, named in LISTEN_FDNAMES.
    const bindThenExec = [
      'import os, socket, sys',
      'unix = socket.socket(socket.AF_UNIX); os.umask(0o077); unix.bind(sys.argv[1]); unix.listen(16)',
      'tcp = socket.socket(); tcp.bind(("127.0.0.1", int(sys.argv[2]))); tcp.listen(16)',
      'os.dup2(unix.fileno(), 3); os.dup2(tcp.fileno(), 4); os.set_inheritable(3, True); os.set_inheritable(4, True)',
      'os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="2", LISTEN_FDNAMES="tokend:metadata")',
      'os.execv(sys.argv[3], sys.argv[3:])',
    ].join('\n');
    const daemon = spawn('/usr/bin/python3', ['-c', bindThenExec, dirs.socket, String(port), process.execPath, BIN, 'serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    daemon.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
    let inode: number;
    try {
      await waitForLog(daemon, () => log, /"event":"listening"/);
      assert.match(log, /"event":"socket_inherited"/);
      inode = lstatSync(dirs.socket).ino;
      await tokensOverBoth(env, port);
      await badInputOverBoth(dirs.socket, port);
      const status = await runCli(['status'], env);
      assert.match(status.stdout, new RegExp(`^metadata: 127\\.0\\.0\\.1 port ${port}, your own user only$`, 'm'));
    } finally {
      assert.equal(await stop(daemon), 0, log);
    }
    const left = lstatSync(dirs.socket);
    assert.ok(left.isSocket(), 'the socket is still there after the daemon stopped');
    assert.equal(left.ino, inode, 'and it is the same socket: never unlinked or rebound');
  });

  test('through systemd-socket-activate: the daemon starts on the first connection and serves both', { skip: skipUnless(requirements.systemdSocketActivate) }, async () => {
    const dirs = daemonDirs();
    mkdirSync(join(dirs.root, 'run'), { mode: 0o700 });
    const port = await freePort();
    const env = daemonEnv(dirs, { TOKEND_STORE: 'memory', BROWSER: 'false' });
    // systemd-socket-activate passes on only the variables it is told to.
    const passed = ['PATH', 'HOME', 'TOKEND_SOCKET', 'TOKEND_CONFIG_DIR', 'TOKEND_STORE', 'TOKEND_TEST_ARTIFACTS'].map((name) => `--setenv=${name}`).join(' ');
    const activator = spawn(
      'sh',
      ['-c', `umask 077; exec systemd-socket-activate -l "${dirs.socket}" -l 127.0.0.1:${port} --fdname=tokend:metadata ${passed} "${process.execPath}" "${BIN}" serve`],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    activator.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
    try {
      await waitForLog(activator, () => log, /Listening on 127\.0\.0\.1/);
      chmodSync(dirs.socket, 0o600); // what SocketMode=0600 does; the activator leaves it 0644, which tokend refuses
      const inode = lstatSync(dirs.socket).ino;
      assert.doesNotMatch(log, /"event":"listening"/, 'nothing runs before the first connection');
      await tokensOverBoth(env, port);
      assert.match(log, /"event":"socket_inherited"/);
      assert.equal(lstatSync(dirs.socket).ino, inode);
    } finally {
      assert.equal(await stop(activator), 0, log);
    }
    assert.ok(lstatSync(dirs.socket).isSocket(), 'the socket the activator bound is not removed by the daemon');
  });
});
