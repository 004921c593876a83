/**
 * The service definitions as the service managers read them: systemd-analyze checks the units this
 * installation would write, Python's plistlib parses the LaunchAgent, and the sandbox the unit asks
 * for is measured against the daemon itself (the system calls and socket families it really uses,
 * and whether V8 survives MemoryDenyWriteExecute).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { describeInstallation, type Installation } from '../../src/service/installation.js';
import { launchAgent } from '../../src/service/launchd-plist.js';
import { systemdUnits } from '../../src/service/systemd-units.js';
import { BIN, daemonDirs, daemonEnv, freePort, loginByPasteBack, runCli } from '../helpers/daemon-process.js';
import { startKeyringSession, type KeyringSession } from '../helpers/keyring-session.js';
import { getMetadata } from '../helpers/metadata-client.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { requirements, skipUnless } from '../helpers/requirements.js';

function installationFor(env: NodeJS.ProcessEnv): Installation {
  return describeInstallation(loadConfig({}, env), env);
}

function tempEnv(extra: NodeJS.ProcessEnv = {}): { env: NodeJS.ProcessEnv; root: string } {
  const { root } = daemonDirs();
  for (const dir of ['home', 'config', 'run']) mkdirSync(join(root, dir), { mode: 0o700 });
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: join(root, 'home'), XDG_CONFIG_HOME: join(root, 'config'), XDG_RUNTIME_DIR: join(root, 'run'), ...extra };
  delete env.TOKEND_SOCKET;
  delete env.TOKEND_CONFIG_DIR;
  return { env, root };
}

/** The words of ExecStart=, unquoted as systemd does (the unit quotes only words that need it). */
function execStartWords(unit: string): string[] {
  const value = /^ExecStart=(.*)$/m.exec(unit)?.[1];
  assert.ok(value !== undefined, 'the service unit has an ExecStart=');
  const words = [...value.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((match) => (match[1] ?? match[2] ?? '').replace(/\\(.)/g, '$1').replace(/%%/g, '%'));
  return words;
}

describe('the systemd units', () => {
  test('systemd-analyze verify --user prints nothing for the units this installation writes (metadata socket included)', { skip: skipUnless(requirements.systemdAnalyze) }, () => {
    const { env, root } = tempEnv({ TOKEND_METADATA_PORT: '8085', TOKEND_STORE: 'keychain' });
    const unitDir = join(root, 'units');
    mkdirSync(unitDir);
    const files = systemdUnits(installationFor(env), unitDir);
    assert.deepEqual(files.map((file) => file.path.slice(unitDir.length + 1)), ['tokend.socket', 'tokend-metadata.socket', 'tokend.service']);
    for (const file of files) writeFileSync(file.path, file.text);
    const result = spawnSync('systemd-analyze', ['verify', '--user', ...files.map((file) => file.path)], { env, encoding: 'utf8', timeout: 30_000 });
    assert.equal(`${result.stdout}${result.stderr}`, '', 'no output at all');
    assert.equal(result.status, 0);
  });

  test('systemd-analyze security rates the service exposure 2.0 or less', { skip: skipUnless(requirements.systemdAnalyze) }, () => {
    const { env, root } = tempEnv();
    const path = join(root, 'tokend.service');
    writeFileSync(path, serviceUnit());
    const result = spawnSync('systemd-analyze', ['security', '--user', '--offline=yes', '--no-pager', path], { env, encoding: 'utf8', timeout: 30_000 });
    const exposure = Number(/Overall exposure level for tokend\.service: ([\d.]+)/.exec(result.stdout)?.[1]);
    assert.ok(exposure <= 2.0, `exposure ${exposure}:\n${result.stdout}`);
  });

  test('verify would speak up: a unit with an unknown directive and a missing program is reported', { skip: skipUnless(requirements.systemdAnalyze) }, () => {
    const { env, root } = tempEnv();
    const unitDir = join(root, 'units');
    mkdirSync(unitDir);
    const files = systemdUnits({ ...installationFor(env), node: join(root, 'no-such-node') }, unitDir);
    for (const file of files) writeFileSync(file.path, file.text.replace('LockPersonality=yes', 'LockPersonality=yes\nLockPersonalityy=yes'));
    const result = spawnSync('systemd-analyze', ['verify', '--user', ...files.map((file) => file.path)], { env, encoding: 'utf8', timeout: 30_000 });
    const output = `${result.stdout}${result.stderr}`;
    assert.match(output, /Unknown key 'LockPersonalityy'/);
    assert.match(output, /no-such-node is not executable/);
  });
});

describe('the LaunchAgent', () => {
  test('parses as a property list and runs the same program with the same arguments as the systemd unit', { skip: skipUnless(requirements.pythonPlistlib) }, () => {
    const { env, root } = tempEnv({ TOKEND_STORE: 'keychain', TOKEND_LOG_LEVEL: 'debug' });
    const install = installationFor(env);
    const plist = launchAgent(install);
    const path = join(root, 'agent.plist');
    writeFileSync(path, plist.text);
    const parsed = spawnSync('/usr/bin/python3', ['-c', 'import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], "rb"))))', path], { encoding: 'utf8' });
    assert.equal(parsed.status, 0, parsed.stderr);
    const agent = JSON.parse(parsed.stdout) as Record<string, unknown>;
    const service = systemdUnits(install, join(root, 'units')).find((file) => file.path.endsWith('tokend.service'))!;
    assert.deepEqual(agent.ProgramArguments, execStartWords(service.text));
    assert.deepEqual(agent.ProgramArguments, [process.execPath, BIN, 'serve']);
    assert.equal(agent.Label, 'dev.tokend');
    assert.equal(agent.RunAtLoad, true);
    assert.deepEqual(agent.KeepAlive, { SuccessfulExit: false });
    assert.equal(agent.StandardErrorPath, join(env.HOME!, 'Library', 'Logs', 'tokend', 'tokend.log'));
    assert.deepEqual(agent.EnvironmentVariables, { TOKEND_LOG_LEVEL: 'debug', TOKEND_STORE: 'keychain', TOKEND_SOCKET: install.socket.path, TOKEND_SERVICE: 'launchd' });
    assert.match(service.text, /^Environment=TOKEND_LOG_LEVEL=debug$/m, 'the unit carries the same settings');
  });
});

/** Every system call a systemd group allows, nested groups expanded, as systemd-analyze lists them. */
function syscallGroup(group: string, seen = new Set<string>()): Set<string> {
  const listing = spawnSync('systemd-analyze', ['syscall-filter', group], { encoding: 'utf8' }).stdout;
  const calls = new Set<string>();
  for (const row of listing.split('\n').slice(1)) {
    const name = row.trim();
    if (name === '' || name.startsWith('#')) continue;
    if (name.startsWith('@')) {
      if (!seen.has(name)) {
        seen.add(name);
        for (const call of syscallGroup(name, seen)) calls.add(call);
      }
    } else {
      calls.add(name);
    }
  }
  return calls;
}

/** Runs `program` with prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN): what MemoryDenyWriteExecute= enforces. */
const UNDER_MDWE = [
  'import ctypes, os, sys',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit("prctl(PR_SET_MDWE) failed: errno %d (Linux 6.3 or later needed)" % ctypes.get_errno())',
  'os.execv(sys.argv[1], sys.argv[1:])',
].join('\n');

function serviceUnit(): string {
  const { env, root } = tempEnv();
  return systemdUnits(installationFor(env), join(root, 'units')).find((file) => file.path.endsWith('tokend.service'))!.text;
}

/** The system calls a unit's SystemCallFilter= lines leave allowed, applied in order as systemd does. */
function allowedSyscalls(unit: string): Set<string> {
  const allowed = new Set<string>();
  for (const [, deny, list] of unit.matchAll(/^SystemCallFilter=(~?)(.*)$/gm)) {
    for (const item of list!.split(' ')) {
      for (const call of item.startsWith('@') ? syscallGroup(item) : [item]) {
        if (deny === '~') allowed.delete(call);
        else allowed.add(call);
      }
    }
  }
  return allowed;
}

const BUSY_SCRIPT = 'let s = 0; for (let i = 0; i < 1e7; i++) s += i; console.log(s)';

describe('the sandbox the unit asks for, measured on the daemon', () => {
  test('MemoryDenyWriteExecute= is left out because node dies under it: V8 aborts at its first compiled function', () => {
    const plain = spawnSync(process.execPath, ['-e', BUSY_SCRIPT], { encoding: 'utf8' });
    assert.equal(plain.stdout.trim(), '49999995000000');
    const denied = spawnSync('/usr/bin/python3', ['-c', UNDER_MDWE, process.execPath, '-e', BUSY_SCRIPT], { encoding: 'utf8', timeout: 30_000 });
    assert.doesNotMatch(denied.stderr, /prctl\(PR_SET_MDWE\) failed/, 'the kernel must support PR_SET_MDWE for this measurement');
    // If this starts to pass, V8 has learnt to live without W^X transitions: add MemoryDenyWriteExecute=yes.
    assert.equal(denied.signal, 'SIGTRAP', `node ran under MemoryDenyWriteExecute (${String(denied.status)}): the unit should now set it`);
    assert.match(denied.stderr, /SetPermissions/, 'V8 aborts where it makes compiled code executable');
    assert.doesNotMatch(serviceUnit(), /^MemoryDenyWriteExecute=/m);
  });

  describe('a whole session under strace: start, keychain, consent, tokens on both listeners, SIGTERM', { skip: skipUnless(requirements.strace, requirements.keyring, requirements.systemdAnalyze) }, () => {
    let oauth: StandinHandle;
    let keyring: KeyringSession;
    let calls: Set<string>;
    let families: Set<string>;
    let diagSockets: number;
    before(async () => {
      oauth = await startStandin();
      keyring = await startKeyringSession();
      const dirs = daemonDirs();
      const port = await freePort();
      const env = daemonEnv(dirs, { ...keyring.vars, TOKEND_STORE: 'keychain', TOKEND_METADATA_PORT: String(port), BROWSER: 'false' });
      const trace = join(dirs.root, 'strace.txt');
      const tracer = spawn('strace', ['-f', '-qq', '-o', trace, process.execPath, BIN, 'serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      tracer.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
      for (let i = 0; i < 400 && !log.includes('"event":"listening"'); i++) {
        assert.equal(tracer.exitCode, null, log);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const clientFile = oauth.writeClientSecrets(dirs.root);
      const login = await loginByPasteBack(['--client-secrets', clientFile, '--scopes', 'bigquery,cloud-platform', '--default'], env);
      assert.equal(login.code, 0, `${login.stderr}\n${log}`);
      assert.equal((await runCli(['token', '--scopes', 'bigquery'], env)).code, 0);
      assert.equal((await getMetadata(port, '/computeMetadata/v1/instance/service-accounts/default/token?scopes=cloud-platform')).status, 200);
      const status = await runCli(['status', '--json'], env);
      const pid = (JSON.parse(status.stdout) as { daemon: { pid: number } }).daemon.pid;
      process.kill(pid, 'SIGTERM');
      const code = await new Promise<number | null>((resolve) => tracer.once('exit', resolve));
      assert.equal(code, 0, log);
      const text = readFileSync(trace, 'utf8');
      calls = new Set([...text.matchAll(/^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)/gm)].map((match) => match[1]!));
      families = new Set([...text.matchAll(/\bsocket\((AF_[A-Z0-9]+)/g)].map((match) => match[1]!));
      diagSockets = [...text.matchAll(/\bsocket\(AF_NETLINK, [^)]*NETLINK_SOCK_DIAG\) = \d+/g)].length;
    });
    after(async () => {
      await keyring?.stop();
      await oauth?.stop();
    });

    test("every system call it makes is one the unit's SystemCallFilter= lines allow", () => {
      const allowed = allowedSyscalls(serviceUnit());
      assert.ok(calls.size > 40, `strace saw the session (${calls.size} distinct calls)`);
      assert.deepEqual([...calls].filter((call) => !allowed.has(call)).sort(), []);
    });

    test("it opens sockets of the unit's RestrictAddressFamilies= only, netlink for the kernel's lookup of a TCP connection's owner", () => {
      const restricted = /^RestrictAddressFamilies=(.*)$/m.exec(serviceUnit())?.[1]?.split(' ') ?? [];
      assert.deepEqual(restricted, ['AF_UNIX', 'AF_INET', 'AF_INET6', 'AF_NETLINK']);
      assert.ok(families.has('AF_UNIX') && families.has('AF_INET'), [...families].join(' '));
      assert.deepEqual([...families].filter((family) => !restricted.includes(family)), []);
      assert.ok(diagSockets > 0, 'the metadata listener asked the kernel for its connections\' owners (NETLINK_SOCK_DIAG)');
    });
  });
});
