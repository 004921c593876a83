import { lstat, mkdir, readFile, rm, rmdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ConfigError, ServiceManagerError } from '../errors.js';
import { ensurePrivateDir, shellQuote, writeFileAtomic } from '../fs/private-path.js';
import type { Installation } from './installation.js';
import type { ManagerCommand, ManagerQuery, ServiceManager, UnitState } from './manager.js';
import type { RunCommand } from './run-command.js';
import type { ServiceFile } from './systemd-units.js';

/** The first line of every file `tokend service install` writes; nothing else is ever overwritten or removed. */
const WRITTEN_BY = /^(# |<\?xml[^\n]*\n<!DOCTYPE[^\n]*\n<!-- )Written by `tokend service install`/;

export type FileAction = 'create' | 'update' | 'unchanged' | 'remove';
export interface FileChange {
  path: string;
  action: FileAction;
  text?: string;
}
export interface CommandOutcome {
  command: string;
  outcome: 'ran' | 'tolerated' | 'not run';
}
export interface ServiceReport {
  manager: string;
  files: FileChange[];
  commands: CommandOutcome[];
  /** Why the service manager could not be asked, when it could not. */
  unavailable?: string;
}

export interface ServiceContext {
  manager: ServiceManager;
  install: Installation;
  run: RunCommand;
  /** The shell's environment, to tell an absent manager from one this shell cannot reach. */
  env: Readonly<Record<string, string | undefined>>;
}

type Existing = { state: 'absent' } | { state: 'ours'; text: string } | { state: 'foreign' };

async function existing(path: string): Promise<Existing> {
  const info = await lstat(path).catch(() => undefined);
  if (info === undefined) return { state: 'absent' };
  if (!info.isFile()) return { state: 'foreign' };
  const text = await readFile(path, 'utf8');
  return WRITTEN_BY.test(text) ? { state: 'ours', text } : { state: 'foreign' };
}

function refuseForeign(path: string): never {
  throw new ConfigError(`${path} exists and was not written by \`tokend service install\`; tokend leaves it alone`, {
    hint: `move it away (\`mv ${shellQuote(path)} ${shellQuote(`${path}.bak`)}\`) and run \`tokend service install\` again`,
  });
}

export const commandLine = (command: ManagerCommand) => command.argv.map(shellQuote).join(' ');
const notRun = (commands: ManagerCommand[]): CommandOutcome[] => commands.map((command) => ({ command: commandLine(command), outcome: 'not run' }));

/** What install would change, without changing anything. */
export async function planInstall({ manager, install }: ServiceContext): Promise<{ files: ServiceFile[]; changes: FileChange[]; upgrading: boolean; removed: string[] }> {
  const wanted = manager.files(install);
  const changes: FileChange[] = [];
  let upgrading = false;
  for (const file of wanted) {
    const now = await existing(file.path);
    if (now.state === 'foreign') refuseForeign(file.path);
    const action = now.state === 'absent' ? 'create' : now.text === file.text ? 'unchanged' : 'update';
    if (action === 'update') upgrading = true;
    changes.push({ path: file.path, action, text: file.text });
  }
  const removed: string[] = [];
  for (const path of manager.knownPaths(install)) {
    if (wanted.some((file) => file.path === path)) continue;
    if ((await existing(path)).state === 'ours') removed.push(path);
  }
  for (const path of removed) changes.push({ path, action: 'remove' });
  return { files: wanted, changes, upgrading: upgrading || removed.length > 0, removed };
}

async function runAll(context: ServiceContext, commands: ManagerCommand[], outcomes: CommandOutcome[]): Promise<void> {
  for (const command of commands) {
    const result = await context.run(command.argv);
    if (result.status === 0) {
      outcomes.push({ command: commandLine(command), outcome: 'ran' });
      continue;
    }
    const output = `${result.stderr}\n${result.stdout}`;
    if (command.tolerate?.test(output) === true) {
      outcomes.push({ command: commandLine(command), outcome: 'tolerated' });
      continue;
    }
    const unavailable = context.manager.unavailable(result);
    const why = unavailable ?? (output.trim().split('\n')[0] || `exit status ${String(result.status)}`);
    throw new ServiceManagerError(`\`${commandLine(command)}\` failed: ${why}`, {
      hint: unavailable === undefined ? `run it yourself to see why, then \`tokend service install\` again` : NO_MANAGER_HINT,
      details: { done: outcomes.map((done) => done.command) },
    });
  }
}

export const NO_MANAGER_HINT =
  'where no service manager runs (a container, CI, an SSH session without systemd), run the daemon in the foreground with `tokend serve`; remove what install wrote with `tokend service uninstall`';

/**
 * Writes the service files for this installation, then has the manager load and start them. Files of
 * an earlier install are replaced in place (and the running daemon restarted onto them); files the
 * user wrote are never touched. With `dryRun`, changes nothing and reports what it would do.
 */
export async function installService(context: ServiceContext, dryRun: boolean): Promise<ServiceReport> {
  const { manager, install } = context;
  const plan = await planInstall(context);
  const query = await manager.query(context.run, install);
  const { before, after } = manager.installCommands({ upgrading: plan.upgrading, loaded: query.loaded, removed: plan.removed, files: plan.files }, install);
  const report: ServiceReport = { manager: manager.description, files: plan.changes, commands: [] };
  if (query.unavailable !== undefined) report.unavailable = query.unavailable;
  if (dryRun) {
    report.commands = notRun([...before, ...after]);
    return report;
  }
  // The service writes only there, and the sandbox cannot give it a directory that does not exist.
  await ensurePrivateDir(install.configDir, { create: true, others: 'tighten', what: 'configuration' });
  for (const dir of manager.directories(install)) await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const change of plan.changes) {
    if (change.action !== 'create' && change.action !== 'update') continue;
    const dir = dirname(change.path);
    const info = await lstat(dir);
    await writeFileAtomic({ path: dir, dev: info.dev, ino: info.ino }, basename(change.path), change.text ?? '');
  }
  // The files are in place for when a manager runs; the caller says that nothing was started.
  if (query.unavailable !== undefined) {
    for (const path of plan.removed) await rm(path, { force: true });
    report.commands = notRun([...before, ...after]);
    return report;
  }
  await runAll(context, before, report.commands);
  for (const path of plan.removed) await rm(path, { force: true });
  await runAll(context, after, report.commands);
  return report;
}

/** Stops the service and removes the files install wrote; nothing else (accounts, config, logs stay). */
export async function uninstallService(context: ServiceContext, dryRun: boolean): Promise<ServiceReport & { leftAlone: string[] }> {
  const { manager, install } = context;
  const present: string[] = [];
  const leftAlone: string[] = [];
  for (const path of manager.knownPaths(install)) {
    const now = await existing(path);
    if (now.state === 'ours') present.push(path);
    if (now.state === 'foreign') leftAlone.push(path);
  }
  const query = await manager.query(context.run, install);
  const { before, after } = manager.uninstallCommands(present, install);
  const report = { manager: manager.description, files: present.map((path): FileChange => ({ path, action: 'remove' })), commands: [] as CommandOutcome[], leftAlone };
  const reportWith = query.unavailable === undefined ? report : { ...report, unavailable: query.unavailable };
  if (dryRun || query.unavailable !== undefined) {
    const elsewhere = dryRun ? undefined : manager.unreachableManager(install, context.env);
    if (elsewhere !== undefined && present.length > 0) {
      throw new ServiceManagerError(`nothing was removed: ${elsewhere}, and removing the files would leave its units running`, {
        hint: `point this shell at it (\`export XDG_RUNTIME_DIR=/run/user/${install.uid}\`), then run \`tokend service uninstall\` again`,
      });
    }
    // No manager runs for this user: nothing is loaded that could be stopped; the files, and the links
    // an enable made, are all there is to remove.
    reportWith.commands = notRun([...before, ...after]);
    if (!dryRun) await removeFiles([...present, ...(await enableLinksPresent(manager.enableLinks(install)))], manager.ownDirectories(install));
    return reportWith;
  }
  await runAll(context, before, report.commands);
  await removeFiles(present, manager.ownDirectories(install));
  await runAll(context, present.length > 0 ? after : [], report.commands);
  return reportWith;
}

async function enableLinksPresent(paths: string[]): Promise<string[]> {
  const links: string[] = [];
  for (const path of paths) if ((await lstat(path).catch(() => undefined))?.isSymbolicLink() === true) links.push(path);
  return links;
}

/** The files, and tokend's own directories (the log directory) if nothing else is in them now. */
async function removeFiles(paths: string[], directories: string[]): Promise<void> {
  for (const path of paths) await rm(path, { force: true });
  for (const dir of [...directories].reverse()) await rmdir(dir).catch(() => undefined);
}

export interface ServiceStatus {
  manager: string;
  files: Array<{ path: string; state: 'current' | 'out of date' | 'missing' | 'not written by tokend' }>;
  units: UnitState[];
  unavailable?: string;
  /** Installed from this copy, current, and the manager reports every unit healthy. */
  ok: boolean;
  installed: boolean;
}

export async function serviceStatus(context: ServiceContext): Promise<ServiceStatus> {
  const { manager, install } = context;
  const files: ServiceStatus['files'] = [];
  for (const file of manager.files(install)) {
    const now = await existing(file.path);
    files.push({
      path: file.path,
      state: now.state === 'absent' ? 'missing' : now.state === 'foreign' ? 'not written by tokend' : now.text === file.text ? 'current' : 'out of date',
    });
  }
  const query: ManagerQuery = await manager.query(context.run, install);
  const installed = files.some((file) => file.state !== 'missing');
  const ok = query.unavailable === undefined && files.every((file) => file.state === 'current') && query.units.every((unit) => unit.ok);
  return { manager: manager.description, files, units: query.units, ...(query.unavailable === undefined ? {} : { unavailable: query.unavailable }), ok, installed };
}
