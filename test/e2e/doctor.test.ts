/**
 * `tokend doctor` against real daemons, a real Secret Service and the stand-in: it passes on a healthy
 * install, and each problem it claims to detect is made real once and detected, with its fix.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, chmodSync, cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runChecks } from '../../src/cli/doctor-checks.js';
import { loadConfig } from '../../src/config/config.js';
import { describeInstallation } from '../../src/service/installation.js';
import { installService } from '../../src/service/service.js';
import { systemdManager } from '../../src/service/systemd-manager.js';
import { daemonDirs, daemonEnv, freePort, loginByPasteBack, runCli, startDaemonProcess, stopAllDaemons } from '../helpers/daemon-process.js';
import { startKeyringSession, type KeyringSession } from '../helpers/keyring-session.js';
import { serveOnLoopback } from '../helpers/loopback-server.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { requirements, skipUnless } from '../helpers/requirements.js';

const ROOT = new URL('../../', import.meta.url).pathname;

interface Check {
  id: string;
  status: 'ok' | 'warn' | 'fail';
  summary: string;
  fix?: string;
}

let standin: StandinHandle;
let keyring: KeyringSession | undefined;
const skip = skipUnless(requirements.keyring);
before(async () => {
  standin = await startStandin();
  if (skip === false) keyring = await startKeyringSession();
});
after(async () => {
  await stopAllDaemons();
  await keyring?.stop();
  await standin?.stop();
});

/** A logged-in daemon; `clientEnv` is what a shell pointed at it would have (GCE_METADATA_HOST, a clean gcloud dir). */
async function install(name: string, options: { env?: NodeJS.ProcessEnv; config?: Record<string, unknown>; clientFile?: (dir: string) => string; metadata?: boolean } = {}) {
  const dirs = daemonDirs();
  mkdirSync(dirs.configDir, { mode: 0o700 });
  const port = await freePort();
  const config = { ...(options.metadata === false ? {} : { metadataPort: port, projectNumber: '123456789012' }), ...options.config };
  writeFileSync(join(dirs.configDir, 'config.json'), JSON.stringify(config), { mode: 0o600 });
  const gcloudDir = join(dirs.root, 'gcloud');
  mkdirSync(gcloudDir);
  const env = daemonEnv(dirs, { ...(keyring?.vars ?? {}), TOKEND_STORE: 'keychain', BROWSER: 'false', CLOUDSDK_CONFIG: gcloudDir, ...options.env });
  for (const variable of ['GOOGLE_APPLICATION_CREDENTIALS', 'HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'GCE_METADATA_HOST']) if (options.env?.[variable] === undefined) delete env[variable];
  const daemon = await startDaemonProcess({ name, env, socket: dirs.socket });
  const clientFile = options.clientFile?.(dirs.root) ?? standin.writeClientSecrets(dirs.root);
  const login = await loginByPasteBack(['--client-secrets', clientFile, '--scopes', 'cloud-platform', '--default'], env);
  assert.equal(login.code, 0, login.stderr);
  const clientEnv = { ...env, GCE_METADATA_HOST: `127.0.0.1:${port}` };
  return { dirs, env, clientEnv, daemon, gcloudDir, port };
}

async function doctor(env: NodeJS.ProcessEnv): Promise<{ code: number | null; checks: Check[]; text: string }> {
  const json = await runCli(['doctor', '--json'], env);
  const text = await runCli(['doctor'], env);
  return { code: json.code, checks: (JSON.parse(json.stdout) as { checks: Check[] }).checks, text: text.stdout };
}

function check(checks: Check[], id: string): Check {
  const found = checks.find((candidate) => candidate.id === id);
  assert.ok(found !== undefined, `doctor has a ${id} check: ${checks.map((c) => c.id).join(', ')}`);
  return found;
}

describe('tokend doctor', { skip }, () => {
  let healthy: Awaited<ReturnType<typeof install>>;
  before(async () => (healthy = await install('doctor-healthy')));

  test('passes on a healthy install: every check ok but the service, which no manager here can run', async () => {
    const { code, checks, text } = await doctor(healthy.clientEnv);
    assert.equal(code, 0, text);
    const notOk = checks.filter((c) => c.status !== 'ok').map((c) => c.id);
    assert.deepEqual(notOk, ['service'], text);
    assert.match(check(checks, 'service').summary, /^not installed; no systemd user manager answers for this session/);
    for (const id of ['socket-directory', 'daemon', 'keychain', 'account alice@example.com', 'metadata-listener', 'environment', 'project-number', 'clock']) check(checks, id);
    assert.match(check(checks, `upstream ${new URL(standin.tokenUri).host}`).summary, /^answers directly \(HTTP \d{3}, \d+ ms\)$/);
    assert.match(text, /^ok {4}keychain +the Secret Service \(org\.freedesktop\.secrets\) answers and is unlocked/m);
  });

  test('a socket directory others can enter: fail, with the chmod', async () => {
    const dir = join(healthy.dirs.root, 'run');
    chmodSync(dir, 0o750);
    try {
      const { code, checks } = await doctor(healthy.clientEnv);
      assert.equal(code, 1);
      assert.deepEqual(check(checks, 'socket-directory'), { id: 'socket-directory', status: 'fail', summary: `${dir} is open to other users (mode 0750)`, fix: `chmod 700 ${dir}` });
    } finally {
      chmodSync(dir, 0o700);
    }
    chmodSync(healthy.dirs.socket, 0o644);
    try {
      const { checks } = await doctor(healthy.clientEnv);
      assert.deepEqual(check(checks, 'socket-directory'), { id: 'socket-directory', status: 'fail', summary: `${healthy.dirs.socket} is open to other users (mode 0644)`, fix: `chmod 600 ${healthy.dirs.socket}` });
    } finally {
      chmodSync(healthy.dirs.socket, 0o600);
    }
  });

  test('no daemon on the socket: fail, with how to start one', async () => {
    const { code, checks } = await doctor({ ...healthy.clientEnv, TOKEND_SOCKET: join(healthy.dirs.root, 'run', 'other.sock') });
    assert.equal(code, 1);
    const daemon = check(checks, 'daemon');
    assert.equal(daemon.status, 'fail');
    assert.match(daemon.fix ?? '', /tokend serve/);
  });

  test('a daemon of another version: warn, with the restart', async () => {
    // A second copy of this installation that calls itself 9.9.9: a real daemon, only its version differs.
    const copy = join(daemonDirs().root, 'tokend-copy');
    mkdirSync(copy);
    for (const part of ['bin', 'dist']) cpSync(join(ROOT, part), join(copy, part), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    writeFileSync(join(copy, 'package.json'), JSON.stringify({ ...manifest, version: '9.9.9' }));
    const dirs = daemonDirs();
    const env = daemonEnv(dirs, { TOKEND_STORE: 'memory' });
    const other = spawn(process.execPath, [join(copy, 'bin', 'tokend.js'), 'serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let log = '';
      other.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
      for (let i = 0; i < 200 && !log.includes('"event":"listening"'); i++) await new Promise((resolve) => setTimeout(resolve, 25));
      const daemon = check((await doctor(env)).checks, 'daemon');
      assert.equal(daemon.status, 'warn');
      assert.match(daemon.summary, /^the daemon runs tokend 9\.9\.9, this command is \d+\.\d+\.\d+/);
      assert.equal(daemon.fix, `stop the \`tokend serve\` running as pid ${other.pid} (Ctrl-C in its terminal, or \`kill ${other.pid}\`) and start it again`, 'started by hand, not by a service manager');
    } finally {
      other.kill('SIGTERM');
    }
  });

  test('a daemon without any account: fail, with the login', async () => {
    const dirs = daemonDirs();
    const env = daemonEnv(dirs, { TOKEND_STORE: 'memory' });
    await startDaemonProcess({ name: 'doctor-no-account', env, socket: dirs.socket });
    const { code, checks } = await doctor(env);
    assert.equal(code, 1);
    assert.deepEqual(check(checks, 'accounts'), { id: 'accounts', status: 'fail', summary: 'no account is logged in', fix: 'tokend login --client-secrets client_secrets.json' });
  });

  test('service files from another version or configuration: warn, with the install', async () => {
    const units = join(healthy.dirs.root, 'units-config');
    const env = { ...healthy.clientEnv, XDG_CONFIG_HOME: units };
    await runCli(['service', 'install'], env); // writes the files; no manager here starts them
    appendFileSync(join(units, 'systemd', 'user', 'tokend.service'), '# edited by hand\n');
    assert.deepEqual(check((await doctor(env)).checks, 'service'), { id: 'service', status: 'warn', summary: 'installed from another version or configuration', fix: 'tokend service install' });
  });

  test('a unit the service manager reports failed: fail, with the journal', async () => {
    // No user manager runs here: systemctl's answers are scripted, the files and everything else are real.
    const units = join(healthy.dirs.root, 'units-failed');
    const env = { ...healthy.clientEnv, XDG_CONFIG_HOME: units };
    const config = loadConfig({}, env);
    const run = (argv: readonly string[]) =>
      Promise.resolve({
        status: 0,
        stderr: '',
        missing: false,
        timedOut: false,
        stdout: argv[2] === 'show' ? 'Id=tokend.socket\nLoadState=loaded\nActiveState=active\nSubState=listening\nUnitFileState=enabled\nMainPID=0\n\nId=tokend-metadata.socket\nLoadState=loaded\nActiveState=active\nSubState=listening\nUnitFileState=enabled\nMainPID=0\n\nId=tokend.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nUnitFileState=static\nMainPID=0\n' : '',
      });
    const manager = systemdManager(env);
    await installService({ manager, install: describeInstallation(config, env), run, env }, false);
    const checks = await runChecks({ config, env, manager, run, keychainTimeoutMs: 500 });
    assert.deepEqual(check(checks, 'service'), { id: 'service', status: 'fail', summary: 'tokend.service: failed (failed)', fix: 'journalctl --user -u tokend -n 50' });
  });

  test('GOOGLE_APPLICATION_CREDENTIALS set: warn, with the unset', async () => {
    const { checks } = await doctor({ ...healthy.clientEnv, GOOGLE_APPLICATION_CREDENTIALS: '/tmp/key.json' });
    assert.deepEqual(check(checks, 'google-application-credentials'), { id: 'google-application-credentials', status: 'warn', summary: 'GOOGLE_APPLICATION_CREDENTIALS is set (/tmp/key.json): clients use that file, not tokend', fix: 'unset GOOGLE_APPLICATION_CREDENTIALS' });
  });

  test("gcloud's application-default credentials file: warn, with the revoke", async () => {
    const gcloud = join(healthy.dirs.root, 'gcloud-adc');
    mkdirSync(gcloud);
    writeFileSync(join(gcloud, 'application_default_credentials.json'), '{}');
    const { checks } = await doctor({ ...healthy.clientEnv, CLOUDSDK_CONFIG: gcloud });
    assert.equal(check(checks, 'gcloud-adc').status, 'warn');
    assert.equal(check(checks, 'gcloud-adc').fix, 'gcloud auth application-default revoke');
  });

  test('gcloud logged in with its own account: warn, with the unset', async () => {
    const gcloud = join(healthy.dirs.root, 'gcloud-account');
    mkdirSync(join(gcloud, 'configurations'), { recursive: true });
    writeFileSync(join(gcloud, 'configurations', 'config_default'), '[core]\naccount = bob@example.com\n');
    const { checks } = await doctor({ ...healthy.clientEnv, CLOUDSDK_CONFIG: gcloud });
    assert.deepEqual([check(checks, 'gcloud-account').status, check(checks, 'gcloud-account').fix], ['warn', 'gcloud config unset account']);
    assert.match(check(checks, 'gcloud-account').summary, /bob@example\.com/);
  });

  test('gcloud\'s cached "not on GCE": warn, with the rm', async () => {
    const gcloud = join(healthy.dirs.root, 'gcloud-gce');
    mkdirSync(gcloud);
    writeFileSync(join(gcloud, 'gce'), 'False');
    const { checks } = await doctor({ ...healthy.clientEnv, CLOUDSDK_CONFIG: gcloud });
    assert.deepEqual([check(checks, 'gcloud-gce-cache').status, check(checks, 'gcloud-gce-cache').fix], ['warn', `rm ${join(gcloud, 'gce')}`]);
  });

  test("a shell not pointed at the listener: warn, with the eval", async () => {
    const { checks } = await doctor(healthy.env);
    assert.deepEqual(check(checks, 'environment'), { id: 'environment', status: 'warn', summary: "this shell does not point Google's SDKs at the listener", fix: 'eval "$(tokend env)"' });
  });

  test('the service not installed: warn', async () => {
    const { checks } = await doctor(healthy.clientEnv);
    assert.equal(check(checks, 'service').status, 'warn');
    assert.match(check(checks, 'service').summary, /^not installed; /);
  });

  test('a metadata listener that is off: warn, with the setting', async () => {
    const off = await install('doctor-no-metadata', { metadata: false });
    const { checks } = await doctor(off.env);
    const listener = check(checks, 'metadata-listener');
    assert.equal(listener.status, 'warn');
    assert.match(listener.fix ?? '', /"metadataPort": 8085/);
  });

  test('the project number unknown: warn, with how to set it', async () => {
    const deadPort = await freePort();
    const unknown = await install('doctor-no-project-number', { config: { projectNumber: undefined }, env: { TOKEND_RESOURCE_MANAGER_URL: `http://127.0.0.1:${deadPort}` } });
    let number = check((await doctor(unknown.clientEnv)).checks, 'project-number');
    for (let i = 0; i < 50 && !number.summary.startsWith('unknown'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100)); // the lookup's failure is the event waited for
      number = check((await doctor(unknown.clientEnv)).checks, 'project-number');
    }
    assert.equal(number.status, 'warn');
    assert.match(number.fix ?? '', /"projectNumber": "<digits>"/);
  });

  test('an account whose refresh token is dead: fail, with the exact login command', async () => {
    const dead = await install('doctor-consent');
    standin.faults.push({ invalidGrant: true });
    const refused = await runCli(['token', '--scopes', 'cloud-platform'], dead.env);
    standin.faults.length = 0;
    assert.match(refused.stderr, /must consent again/, `the refresh met invalid_grant: ${refused.stderr}`);
    const { code, checks } = await doctor(dead.clientEnv);
    assert.equal(code, 1);
    const account = check(checks, 'account alice@example.com');
    assert.equal(account.status, 'fail');
    assert.match(account.fix ?? '', /^tokend login --client-secrets \S+ --scopes /);
  });

  test('accounts in the file store while the keychain works: warn, with the migrate', async () => {
    const filed = await install('doctor-file-store', { env: { TOKEND_STORE: 'file', TOKEND_FILE_PASSPHRASE: 'doctor passphrase' } });
    const keychainCheck = check((await doctor(filed.clientEnv)).checks, 'keychain');
    assert.deepEqual([keychainCheck.status, keychainCheck.fix], ['warn', 'tokend store migrate --to keychain']);
  });

  test('no Secret Service where the daemon keeps its accounts in it: the keychain check says so', async () => {
    const { checks } = await doctor({ ...healthy.clientEnv, DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(healthy.dirs.root, 'no-bus')}` });
    const keychainCheck = check(checks, 'keychain');
    assert.equal(keychainCheck.status, 'fail');
    assert.match(keychainCheck.summary, /keeps your accounts in the Secret Service .* which is not usable now/);
    assert.match(keychainCheck.fix ?? '', /gnome-keyring-daemon/);
  });

  test("an upstream the daemon cannot reach through its proxy (Google's, with no account yet): fail, naming the proxy", async () => {
    const deadPort = await freePort();
    const dirs = daemonDirs();
    const env = daemonEnv(dirs, { TOKEND_STORE: 'memory', HTTPS_PROXY: `http://127.0.0.1:${deadPort}` });
    await startDaemonProcess({ name: 'doctor-dead-proxy', env, socket: dirs.socket });
    const { code, checks } = await doctor(env);
    assert.equal(code, 1);
    const upstream = checks.find((c) => c.id.startsWith('upstream '))!;
    assert.equal(upstream.status, 'fail');
    assert.equal(upstream.summary, `cannot be reached through the proxy http://127.0.0.1:${deadPort} (ECONNREFUSED)`);
    assert.match(upstream.fix ?? '', /^check that the proxy http:\/\/127\.0\.0\.1:\d+ is running/);
  });

  test('an upstream (here: its proxy) that accepts and never answers: fail, not a doctor that gives up first', async () => {
    const silent = createNetServer((socket) => socket.on('error', () => undefined)); // accepts, reads, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const dirs = daemonDirs();
      const env = daemonEnv(dirs, { TOKEND_STORE: 'memory', HTTPS_PROXY: `http://127.0.0.1:${(silent.address() as AddressInfo).port}` });
      await startDaemonProcess({ name: 'doctor-silent-upstream', env, socket: dirs.socket });
      const { code, checks } = await doctor(env);
      assert.equal(code, 1);
      const upstream = checks.find((c) => c.id.startsWith('upstream '))!;
      assert.deepEqual([upstream.status, upstream.summary], ['fail', 'no answer within 3000 ms']);
    } finally {
      silent.close();
    }
  });

  /** A daemon whose token endpoint is reached through a relay that shifts the Date header by `offsetMs`. */
  async function doctorWithClockOff(name: string, offsetMs: number) {
    const target = new URL(standin.tokenUri);
    const skewed = await serveOnLoopback(
      createServer((req, res) => {
        const forward = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: { ...req.headers, host: target.host } }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, { ...answer.headers, date: new Date(Date.now() + offsetMs).toUTCString() });
          answer.pipe(res);
        });
        req.pipe(forward);
      }),
    );
    try {
      const client = (dir: string) => {
        const file = JSON.parse(standin.clientSecretsJson()) as { installed: Record<string, string> };
        file.installed.token_uri = `${skewed.endpoint}${target.pathname}`;
        const path = join(dir, 'client_secrets_skewed.json');
        writeFileSync(path, JSON.stringify(file), { mode: 0o600 });
        return path;
      };
      const off = await install(name, { clientFile: client });
      return await doctor(off.clientEnv);
    } finally {
      await skewed.stop();
    }
  }

  test('a clock 10 minutes off the upstream: fail, with the time sync command', async () => {
    const { code, checks } = await doctorWithClockOff('doctor-skew', 600_000);
    assert.equal(code, 1);
    const clock = check(checks, 'clock');
    assert.equal(clock.status, 'fail');
    assert.match(clock.summary, /^this clock is (599|600|601) s behind 127\.0\.0\.1:\d+/);
    assert.equal(clock.fix, 'turn on time synchronisation: sudo timedatectl set-ntp true');
  });

  test('a clock a minute and a half off: warn', async () => {
    const { checks } = await doctorWithClockOff('doctor-skew-small', -90_000);
    const clock = check(checks, 'clock');
    assert.equal(clock.status, 'warn');
    assert.match(clock.summary, /^this clock is (89|90|91) s ahead of 127\.0\.0\.1:\d+$/);
  });

  test('a socket directory that does not exist yet: warn', async () => {
    const missing = join(healthy.dirs.root, 'not-yet', 'tokend.sock');
    const socketDir = check((await doctor({ ...healthy.clientEnv, TOKEND_SOCKET: missing })).checks, 'socket-directory');
    assert.deepEqual([socketDir.status, socketDir.summary], ['warn', `${join(healthy.dirs.root, 'not-yet')} does not exist yet (the daemon creates it, 0700)`]);
  });

  // Last: the keyring stays locked for the rest of the file.
  test('a locked keyring where the daemon keeps the accounts: fail, with how to unlock it', async () => {
    await keyring!.lock();
    const keychainCheck = check((await doctor(healthy.clientEnv)).checks, 'keychain');
    assert.equal(keychainCheck.status, 'fail');
    assert.match(keychainCheck.summary, /which is not usable now: .*locked/);
    assert.match(keychainCheck.fix ?? '', /unlock \(or create\) the login keyring/);
  });
});
