/**
 * `tokend service` as a user runs it, on a machine where no service manager answers (this one, CI,
 * a container): every file and command of a dry run is shown and nothing is written; a real install
 * writes the files and says plainly that nothing was started; status and uninstall then work, and
 * uninstall leaves no file behind.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BIN, daemonDirs, runCli } from '../helpers/daemon-process.js';

/** HOME, XDG_CONFIG_HOME and an empty XDG_RUNTIME_DIR of its own, and no session bus: no manager answers. */
function isolatedEnv(extra: NodeJS.ProcessEnv = {}) {
  const { root } = daemonDirs();
  for (const dir of ['home', 'config', 'run']) mkdirSync(join(root, dir), { mode: 0o700 });
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: join(root, 'home'), XDG_CONFIG_HOME: join(root, 'config'), XDG_RUNTIME_DIR: join(root, 'run'), ...extra };
  for (const name of ['TOKEND_SOCKET', 'TOKEND_CONFIG_DIR', 'DBUS_SESSION_BUS_ADDRESS']) delete env[name];
  return { env, root, unitDir: join(root, 'config', 'systemd', 'user'), agent: join(root, 'home', 'Library', 'LaunchAgents', 'dev.tokend.plist') };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((name) => !statSync(join(dir, name)).isDirectory());
}

describe('tokend service', () => {
  test('install --dry-run (systemd) prints every file and command, and writes nothing', async () => {
    const { env, root, unitDir } = isolatedEnv({ TOKEND_METADATA_PORT: '8085' });
    const result = await runCli(['service', 'install', '--dry-run'], env);
    assert.equal(result.code, 0, result.stderr);
    for (const unit of ['tokend.socket', 'tokend-metadata.socket', 'tokend.service']) assert.match(result.stdout, new RegExp(`would write +${join(unitDir, unit).replace(/[.]/g, '\\.')}$`, 'm'));
    assert.match(result.stdout, new RegExp(`^ {6}\\| ExecStart=${process.execPath} ${BIN} serve$`, 'm'));
    assert.match(result.stdout, /^ {6}\| ListenStream=127\.0\.0\.1:8085$/m);
    assert.match(result.stdout, /would run +systemctl --user daemon-reload$/m);
    assert.match(result.stdout, /would run +systemctl --user enable --now tokend\.socket tokend-metadata\.socket$/m);
    assert.match(result.stderr, /no systemd user manager answers for this session/);
    assert.deepEqual(filesUnder(root), [], 'a dry run writes nothing');
  });

  test('install --dry-run --manager launchd prints the plist and the launchctl commands, and writes nothing', async () => {
    const { env, root, agent } = isolatedEnv();
    const result = await runCli(['service', 'install', '--dry-run', '--manager', 'launchd'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`would write +${agent.replace(/[.]/g, '\\.')}$`, 'm'));
    assert.match(result.stdout, /^ {6}\| {5}<string>serve<\/string>$/m);
    assert.match(result.stdout, /would run +launchctl enable gui\/\d+\/dev\.tokend$/m);
    assert.match(result.stdout, /would run +launchctl bootstrap gui\/\d+ \S+dev\.tokend\.plist$/m);
    assert.deepEqual(filesUnder(root), []);
  });

  test('install, status and uninstall where no systemd answers: clear messages, and nothing left behind', async () => {
    const { env, root, unitDir } = isolatedEnv();
    const install = await runCli(['service', 'install'], env);
    assert.equal(install.code, 1);
    assert.match(install.stderr, /^tokend: the service files are written, but nothing was started: no systemd user manager answers for this session \(.+\)$/m);
    assert.match(install.stderr, /^hint: .*run the daemon in the foreground with `tokend serve`; remove what install wrote with `tokend service uninstall`$/m);
    assert.deepEqual(readdirSync(unitDir).sort(), ['tokend.service', 'tokend.socket']);
    assert.equal(statSync(join(unitDir, 'tokend.service')).mode & 0o777, 0o600);

    const status = await runCli(['service', 'status'], env);
    assert.equal(status.code, 1);
    assert.match(status.stdout, /^ {2}current +\S+tokend\.socket$/m);
    assert.match(status.stdout, /^ {2}manager +no systemd user manager answers/m);

    const json = JSON.parse((await runCli(['service', 'status', '--json'], env)).stdout) as { installed: boolean; ok: boolean };
    assert.deepEqual([json.installed, json.ok], [true, false]);

    const uninstall = await runCli(['service', 'uninstall'], env);
    assert.equal(uninstall.code, 0, uninstall.stderr);
    assert.match(uninstall.stdout, /^ {2}removed +\S+tokend\.service$/m);
    assert.match(uninstall.stderr, /no systemd user manager answers.*; nothing was asked of it/);
    assert.deepEqual(filesUnder(root), [], 'no file is left behind');

    const again = await runCli(['service', 'uninstall'], env);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /tokend was not installed as a service; nothing to remove\./);
    const none = await runCli(['service', 'status'], env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^hint: tokend is not installed as a service: run `tokend service install`$/m);
  });

  test('launchd on a system without it: the plist is written, the message names launchctl; uninstall removes it', async () => {
    const { env, root, agent } = isolatedEnv();
    const install = await runCli(['service', 'install', '--manager', 'launchd'], env);
    assert.equal(install.code, 1);
    assert.match(install.stderr, /nothing was started: launchctl is not installed: this system does not run launchd \(macOS only\)/);
    assert.ok(existsSync(agent), 'the plist is written for when launchd runs');
    assert.equal((await runCli(['service', 'uninstall', '--manager', 'launchd'], env)).code, 0);
    assert.deepEqual(filesUnder(root), []);
  });

  test('a missing or unknown subcommand is a usage error that names the three', async () => {
    const { env } = isolatedEnv();
    const result = await runCli(['service'], env);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^hint: run `tokend service install`, `tokend service status` or `tokend service uninstall`$/m);
  });
});
