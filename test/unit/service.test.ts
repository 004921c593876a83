/**
 * install / uninstall / status against a scripted service manager (the commands' answers are
 * in-memory; the files are real, in a temporary directory): what is written, what is run, in which
 * order, and what is never touched.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, ServiceManagerError } from '../../src/errors.js';
import type { Installation } from '../../src/service/installation.js';
import { launchdManager } from '../../src/service/launchd-manager.js';
import type { CommandResult } from '../../src/service/run-command.js';
import { installService, serviceStatus, uninstallService, type ServiceContext } from '../../src/service/service.js';
import { systemdManager } from '../../src/service/systemd-manager.js';

function installation(root: string, overrides: Partial<Installation> = {}): Installation {
  return {
    version: '0.1.0',
    node: process.execPath,
    entry: '/opt/tokend/bin/tokend.js',
    root: '/opt/tokend',
    args: ['serve'],
    home: join(root, 'home'),
    uid: 1000,
    configDir: join(root, 'home', '.config', 'tokend'),
    configDirIsDefault: true,
    socket: { path: '/run/user/1000/tokend/tokend.sock', chosen: false },
    metadataPort: undefined,
    environment: {},
    withheld: [],
    ...overrides,
  };
}

const ok = (stdout = ''): CommandResult => ({ status: 0, stdout, stderr: '', missing: false, timedOut: false });
const failed = (stderr: string, status = 1): CommandResult => ({ status, stdout: '', stderr, missing: false, timedOut: false });

/** A systemd that answers: `show` reports the units of the files present as loaded and enabled. */
function scriptedSystemd(root: string, install: Installation, answer: (argv: readonly string[]) => CommandResult | undefined = () => undefined) {
  const ran: string[] = [];
  const unitDir = join(root, 'home', '.config', 'systemd', 'user');
  const context: ServiceContext = {
    manager: systemdManager({ HOME: install.home }),
    install,
    env: {},
    run: (argv) => Promise.resolve(respond(argv)),
  };
  function respond(argv: readonly string[]): CommandResult {
    const scripted = answer(argv);
    if (argv[2] === 'show') {
      const blocks = argv.slice(4).map((unit) =>
        existsSync(join(unitDir, unit))
          ? `Id=${unit}\nLoadState=loaded\nActiveState=active\nSubState=listening\nUnitFileState=enabled\nMainPID=0`
          : `Id=${unit}\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\nMainPID=0`,
      );
      return scripted ?? ok(`${blocks.join('\n\n')}\n`);
    }
    ran.push(argv.join(' '));
    return scripted ?? ok();
  }
  return { context, ran, unitDir };
}

const tmp = () => mkdtempSync(join(tmpdir(), 'tokend-service-'));

test('a first install writes the units and enables the socket; a second changes nothing and restarts nothing', async () => {
  const root = tmp();
  const { context, ran, unitDir } = scriptedSystemd(root, installation(root));
  const first = await installService(context, false);
  assert.deepEqual(first.files.map((file) => [file.path.slice(unitDir.length + 1), file.action]), [['tokend.socket', 'create'], ['tokend.service', 'create']]);
  assert.deepEqual(ran, ['systemctl --user daemon-reload', 'systemctl --user enable --now tokend.socket']);
  assert.ok(existsSync(join(root, 'home', '.config', 'tokend')), 'the directory the sandbox lets it write exists');
  ran.length = 0;
  const again = await installService(context, false);
  assert.deepEqual(again.files.map((file) => file.action), ['unchanged', 'unchanged']);
  assert.deepEqual(ran, ['systemctl --user daemon-reload', 'systemctl --user enable --now tokend.socket']);
});

test('an upgrade rewrites in place and stops the old daemon and sockets, so the next connection starts the new one', async () => {
  const root = tmp();
  const { context, ran } = scriptedSystemd(root, installation(root));
  await installService(context, false);
  ran.length = 0;
  const upgraded = { ...context, install: installation(root, { entry: '/opt/tokend-2/bin/tokend.js', metadataPort: 8085 }) };
  const report = await installService(upgraded, false);
  assert.deepEqual(report.files.map((file) => file.action), ['unchanged', 'create', 'update']);
  assert.deepEqual(ran, [
    'systemctl --user daemon-reload',
    'systemctl --user stop tokend.service tokend.socket tokend-metadata.socket',
    'systemctl --user enable --now tokend.socket tokend-metadata.socket',
  ]);
});

test('a metadata socket the configuration no longer has is disabled while its file exists, then removed', async () => {
  const root = tmp();
  let existedWhenDisabled: boolean | undefined;
  const withPort = installation(root, { metadataPort: 8085 });
  const unitDir = join(root, 'home', '.config', 'systemd', 'user');
  const { context, ran } = scriptedSystemd(root, withPort, (argv) => {
    if (argv.join(' ') === 'systemctl --user disable --now tokend-metadata.socket') existedWhenDisabled = existsSync(join(unitDir, 'tokend-metadata.socket'));
    return undefined;
  });
  await installService(context, false);
  ran.length = 0;
  const report = await installService({ ...context, install: installation(root) }, false);
  assert.equal(existedWhenDisabled, true);
  assert.equal(ran[0], 'systemctl --user disable --now tokend-metadata.socket');
  assert.ok(report.files.some((file) => file.action === 'remove' && file.path.endsWith('tokend-metadata.socket')), 'the report says it was removed');
  assert.deepEqual(readdirSync(unitDir).sort(), ['tokend.service', 'tokend.socket']);
});

test('a unit file tokend did not write is refused, and nothing is written', async () => {
  const root = tmp();
  const { context, ran, unitDir } = scriptedSystemd(root, installation(root));
  mkdirSync(unitDir, { recursive: true });
  writeFileSync(join(unitDir, 'tokend.service'), '[Service]\nExecStart=/my/own/tokend\n');
  await assert.rejects(installService(context, false), (error: unknown) => error instanceof ConfigError && /was not written by `tokend service install`/.test(error.message) && /mv /.test(error.hint ?? ''));
  assert.deepEqual(readdirSync(unitDir), ['tokend.service']);
  assert.equal(readFileSync(join(unitDir, 'tokend.service'), 'utf8'), '[Service]\nExecStart=/my/own/tokend\n');
  assert.deepEqual(ran, []);
  const removal = await uninstallService(context, false);
  assert.deepEqual(removal.leftAlone, [join(unitDir, 'tokend.service')]);
  assert.ok(existsSync(join(unitDir, 'tokend.service')), 'uninstall leaves it too');
});

test('a failing command stops the install with its name and output; uninstall tolerates a unit already gone', async () => {
  const root = tmp();
  const { context } = scriptedSystemd(root, installation(root), (argv) => (argv[2] === 'enable' ? failed('Failed to enable unit: Access denied') : undefined));
  await assert.rejects(installService(context, false), (error: unknown) => error instanceof ServiceManagerError && error.message === '`systemctl --user enable --now tokend.socket` failed: Failed to enable unit: Access denied');
  const gone = scriptedSystemd(root, installation(root), (argv) => (argv[2] === 'disable' ? failed('Failed to disable unit: Unit file tokend.socket does not exist.') : undefined));
  const report = await uninstallService(gone.context, false);
  assert.deepEqual(report.commands.map((command) => command.outcome), ['tolerated', 'ran']);
  assert.deepEqual(readdirSync(gone.unitDir), [], 'the files install wrote are gone');
});

test('status: current files and healthy units are ok; an out-of-date file is not', async () => {
  const root = tmp();
  const { context, unitDir } = scriptedSystemd(root, installation(root));
  await installService(context, false);
  const healthy = await serviceStatus(context);
  assert.equal(healthy.ok, true);
  assert.deepEqual(healthy.units.map((unit) => unit.state), ['enabled, active (listening)', 'active (listening)']);
  writeFileSync(join(unitDir, 'tokend.service'), `${readFileSync(join(unitDir, 'tokend.service'), 'utf8')}\n# edited\n`);
  const stale = await serviceStatus(context);
  assert.equal(stale.ok, false);
  assert.deepEqual(stale.files.map((file) => file.state), ['current', 'out of date']);
});

test('launchd: loaded and unchanged runs nothing; an upgrade boots the old agent out before bootstrapping the new', async () => {
  const root = tmp();
  let loaded = false;
  const ran: string[] = [];
  const context: ServiceContext = {
    manager: launchdManager(),
    install: installation(root),
    env: {},
    run: (argv) => Promise.resolve(respond(argv)),
  };
  function respond(argv: readonly string[]): CommandResult {
    if (argv[1] === 'print') return loaded ? ok('gui/1000/dev.tokend = {\n\tstate = running\n\tpid = 42\n}') : failed('Could not find service "dev.tokend" in domain for port', 113);
    ran.push(argv.join(' '));
    if (argv[1] === 'bootstrap') loaded = true;
    return ok();
  }
  await installService(context, false);
  assert.deepEqual(ran, ['launchctl enable gui/1000/dev.tokend', `launchctl bootstrap gui/1000 ${join(root, 'home', 'Library', 'LaunchAgents', 'dev.tokend.plist')}`]);
  assert.ok(existsSync(join(root, 'home', 'Library', 'Logs', 'tokend')), 'the log directory launchd writes to exists');
  ran.length = 0;
  await installService(context, false);
  assert.equal(ran.length, 0, 'loaded and unchanged: nothing to run');
  assert.deepEqual((await serviceStatus(context)).units, [{ name: 'dev.tokend', state: 'running, pid 42', ok: true }]);
  await installService({ ...context, install: installation(root, { entry: '/opt/tokend-2/bin/tokend.js' }) }, false);
  assert.deepEqual(ran.map((command) => command.split(' ').slice(0, 2).join(' ')), ['launchctl bootout', 'launchctl enable', 'launchctl bootstrap']);
});

test('uninstall where no manager runs removes the files and the links an enable made; where one runs out of reach, it removes nothing', async () => {
  const root = tmp();
  const install = installation(root);
  const runtimeRoot = join(root, 'run-user');
  const unitDir = join(root, 'home', '.config', 'systemd', 'user');
  const noBus = (): Promise<CommandResult> => Promise.resolve(failed('Failed to connect to bus: No such file or directory'));
  const context: ServiceContext = { manager: systemdManager({ HOME: install.home }, runtimeRoot), install, env: {}, run: noBus };
  await installService(context, false);
  mkdirSync(join(unitDir, 'sockets.target.wants'));
  symlinkSync(join(unitDir, 'tokend.socket'), join(unitDir, 'sockets.target.wants', 'tokend.socket'));
  // A user manager runs for this uid (its runtime directory exists) but this shell has no XDG_RUNTIME_DIR.
  mkdirSync(join(runtimeRoot, '1000', 'systemd'), { recursive: true });
  await assert.rejects(uninstallService(context, false), (error: unknown) => error instanceof ServiceManagerError && /nothing was removed: systemd runs for you/.test(error.message) && /export XDG_RUNTIME_DIR=\/run\/user\/1000/.test(error.hint ?? ''));
  assert.ok(existsSync(join(unitDir, 'tokend.socket')), 'the files are still there');
  rmSync(join(runtimeRoot, '1000'), { recursive: true });
  await uninstallService(context, false);
  assert.deepEqual(readdirSync(unitDir, { recursive: true }), ['sockets.target.wants'], 'the files and the enable link are gone');
});

test('a metadata socket dropped from the configuration is removed even when no manager answers', async () => {
  const root = tmp();
  const withPort = installation(root, { metadataPort: 8085 });
  const noBus = (): Promise<CommandResult> => Promise.resolve(failed('Failed to connect to bus: No such file or directory'));
  const context: ServiceContext = { manager: systemdManager({ HOME: withPort.home }, join(root, 'none')), install: withPort, env: {}, run: noBus };
  await installService(context, false);
  const report = await installService({ ...context, install: installation(root) }, false);
  assert.ok(report.files.some((file) => file.action === 'remove'), 'the report says it is removed');
  assert.equal(existsSync(join(root, 'home', '.config', 'systemd', 'user', 'tokend-metadata.socket')), false, 'and it is');
});
