import { loadConfig } from '../../config/config.js';
import { ExitCode, ServiceManagerError, UsageError } from '../../errors.js';
import { describeInstallation, type Installation } from '../../service/installation.js';
import { launchdManager } from '../../service/launchd-manager.js';
import type { ServiceManager } from '../../service/manager.js';
import { commandRunner, managerEnvironment } from '../../service/run-command.js';
import { installService, NO_MANAGER_HINT, serviceStatus, uninstallService, type ServiceContext, type ServiceReport } from '../../service/service.js';
import { systemdManager } from '../../service/systemd-manager.js';
import { parseFlags } from '../args.js';
import { line, type Io } from '../io.js';

export const summary = 'install, remove or show tokend as a systemd user service or a launchd agent';
export const usage = `Usage: tokend service install|uninstall|status [--dry-run] [--manager systemd|launchd] [--json]

  install    writes the service files for this copy of tokend (absolute paths of node and its entry
             point), then loads and starts them: systemd starts the daemon on the first connection to
             its socket; launchd at login. Run it again after an upgrade or a configuration change:
             it rewrites what changed and restarts the daemon onto it.
  uninstall  stops the service and removes the files install wrote, nothing else: your accounts,
             configuration and logs stay.
  status     the files (current or out of date) and what the service manager says.

  --dry-run  print every file it would write and every command it would run; change nothing
  --manager  systemd (default on Linux) or launchd (default on macOS)
  --json     (status) print the status as JSON`;

const SUBCOMMANDS = ['install', 'uninstall', 'status'] as const;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(
    'service',
    argv,
    { 'dry-run': { type: 'boolean' }, manager: { type: 'string' }, json: { type: 'boolean' } },
    true,
  );
  const action = positionals[0];
  if (positionals.length !== 1 || !(SUBCOMMANDS as readonly string[]).includes(action ?? '')) {
    throw new UsageError(positionals.length === 0 ? '`tokend service` needs a subcommand' : `unknown subcommand "${positionals.join(' ')}"`, {
      hint: 'run `tokend service install`, `tokend service status` or `tokend service uninstall`',
    });
  }
  const manager = managerFor(values.manager, io.env);
  const install = describeInstallation(loadConfig({}, io.env), io.env);
  const context: ServiceContext = { manager, install, run: commandRunner(managerEnvironment(io.env)), env: io.env };
  const dryRun = values['dry-run'] === true;
  if (action === 'status') return printStatus(context, io, values.json === true);
  if (action === 'install') {
    for (const warning of installWarnings(install, manager, io.env)) line(io.stderr, `warning: ${warning}`);
    const report = await installService(context, dryRun);
    printReport(io, report, dryRun, !dryRun);
    if (dryRun) return ExitCode.ok;
    if (report.unavailable !== undefined) {
      throw new ServiceManagerError(`the service files are written, but nothing was started: ${report.unavailable}`, { hint: NO_MANAGER_HINT });
    }
    line(io.stdout, startsWhen(install, manager));
    return ExitCode.ok;
  }
  const report = await uninstallService(context, dryRun);
  printReport(io, report, dryRun);
  for (const path of report.leftAlone) line(io.stderr, `note: ${path} was not written by tokend service install; left alone`);
  if (!dryRun) {
    line(io.stdout, report.files.length === 0 ? 'tokend was not installed as a service; nothing to remove.' : 'Removed. Your accounts and configuration stay; `tokend serve` still runs the daemon by hand.');
  }
  return ExitCode.ok;
}

function managerFor(name: string | undefined, env: Io['env']): ServiceManager {
  const chosen = name ?? (process.platform === 'darwin' ? 'launchd' : 'systemd');
  if (chosen === 'systemd') return systemdManager(env);
  if (chosen === 'launchd') return launchdManager();
  throw new UsageError(`unknown service manager "${chosen}"`, { hint: 'use `--manager systemd` (Linux) or `--manager launchd` (macOS)' });
}

const VERBS = { create: 'write', update: 'rewrite', unchanged: 'keep', remove: 'remove' } as const;
const DONE = { create: 'wrote', update: 'rewrote', unchanged: 'kept', remove: 'removed' } as const;

function printReport(io: Io, report: ServiceReport, dryRun: boolean, quietUnavailable = false): void {
  line(io.stdout, `${report.manager}${dryRun ? ' (dry run: nothing is changed)' : ''}`);
  for (const file of report.files) {
    line(io.stdout, `  ${(dryRun ? `would ${VERBS[file.action]}` : DONE[file.action]).padEnd(14)} ${file.path}`);
    if (dryRun && file.text !== undefined && file.action !== 'unchanged') {
      for (const row of file.text.trimEnd().split('\n')) line(io.stdout, `      | ${row}`);
    }
  }
  for (const command of report.commands) {
    const verb = dryRun ? 'would run' : command.outcome === 'tolerated' ? 'ran (already so)' : command.outcome === 'ran' ? 'ran' : 'not run';
    line(io.stdout, `  ${verb.padEnd(14)} ${command.command}`);
  }
  if (report.commands.length === 0) line(io.stdout, `  ${'nothing to run'.padEnd(14)} (the service manager already has it)`);
  // A real install without a manager ends in an error that says it; everything else notes it.
  if (report.unavailable !== undefined && !quietUnavailable) line(io.stderr, `note: ${report.unavailable}; nothing ${dryRun ? 'would be' : 'was'} asked of it`);
}

function installWarnings(install: Installation, manager: ServiceManager, env: Io['env']): string[] {
  const warnings = install.withheld.map(
    (name) => `${name} is set here but is not written into the service (a secret never goes in a service file); a file store it encrypts cannot be opened by the service: move your accounts to the keychain first (\`tokend store migrate --to keychain\`)`,
  );
  if (manager.kind === 'systemd' && !install.socket.chosen && (env.XDG_RUNTIME_DIR ?? '') === '') {
    warnings.push(
      `this shell has no XDG_RUNTIME_DIR, so programs started here look for the socket at ${install.socket.path}, while the service listens in /run/user/${install.uid}/tokend/: \`export XDG_RUNTIME_DIR=/run/user/${install.uid}\` (your login session normally sets it)`,
    );
  }
  return warnings;
}

function startsWhen(install: Installation, manager: ServiceManager): string {
  const socket = install.socket.chosen ? install.socket.path : `$XDG_RUNTIME_DIR/tokend/tokend.sock`;
  return manager.kind === 'systemd'
    ? `Installed: systemd starts tokend on the first connection to ${socket}. \`tokend service status\` shows it; \`journalctl --user -u tokend\` its log.`
    : `Installed: launchd runs tokend now and at every login. \`tokend service status\` shows it; its log is in ~/Library/Logs/tokend/.`;
}

async function printStatus(context: ServiceContext, io: Io, json: boolean): Promise<number> {
  const status = await serviceStatus(context);
  if (json) {
    line(io.stdout, JSON.stringify(status, null, 2));
    return status.ok ? ExitCode.ok : ExitCode.failure;
  }
  line(io.stdout, status.manager);
  for (const file of status.files) line(io.stdout, `  ${file.state.padEnd(22)} ${file.path}`);
  for (const unit of status.units) line(io.stdout, `  ${unit.name.padEnd(22)} ${unit.state}`);
  if (status.unavailable !== undefined) line(io.stdout, `  ${'manager'.padEnd(22)} ${status.unavailable}`);
  if (!status.installed) line(io.stderr, 'hint: tokend is not installed as a service: run `tokend service install`');
  else if (status.files.some((file) => file.state === 'out of date')) line(io.stderr, 'hint: the service files are from another version or configuration: run `tokend service install`');
  else if (!status.ok && status.unavailable === undefined) line(io.stderr, `hint: ${context.manager.kind === 'systemd' ? '`journalctl --user -u tokend -n 50` shows why' : 'the log in ~/Library/Logs/tokend/ shows why'}`);
  return status.ok ? ExitCode.ok : ExitCode.failure;
}
