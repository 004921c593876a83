import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import type { Env } from '../config/paths.js';
import type { Installation } from './installation.js';
import type { ManagerCommand, ManagerQuery, ServiceManager, UnitState } from './manager.js';
import type { CommandResult } from './run-command.js';
import { ALL_UNITS, METADATA_SOCKET_UNIT, SERVICE_UNIT, SOCKET_UNIT, systemdUnits, userUnitDir, type ServiceFile } from './systemd-units.js';

const systemctl = (...args: string[]): ManagerCommand => ({ argv: ['systemctl', '--user', ...args] });
const socketsOf = (files: ServiceFile[]) => files.map((file) => basename(file.path)).filter((name) => name.endsWith('.socket'));

/** `runtimeRoot`: where systemd keeps each user's runtime directory (tests give their own). */
export function systemdManager(env: Env, runtimeRoot = '/run/user'): ServiceManager {
  const unitDir = (install: Installation) => userUnitDir(env, install.home);
  return {
    kind: 'systemd',
    description: "systemd's user manager",
    files: (install) => systemdUnits(install, unitDir(install)),
    knownPaths: (install) => ALL_UNITS.map((name) => `${unitDir(install)}/${name}`),
    directories: (install) => [unitDir(install)],
    ownDirectories: () => [],
    enableLinks: (install) => [SOCKET_UNIT, METADATA_SOCKET_UNIT].map((name) => `${unitDir(install)}/sockets.target.wants/${name}`),
    unreachableManager(install, shell) {
      const runtime = `${runtimeRoot}/${install.uid}`;
      if (shell.XDG_RUNTIME_DIR === runtime || !existsSync(`${runtime}/systemd`)) return undefined;
      return `systemd runs for you (${runtime}/systemd exists), but this shell cannot reach it (XDG_RUNTIME_DIR is ${shell.XDG_RUNTIME_DIR ?? 'unset'})`;
    },
    installCommands({ upgrading, removed, files }) {
      const sockets = socketsOf(files);
      return {
        // A metadata socket the new configuration no longer has: stopped while its file still exists.
        before: removed.length > 0 ? [systemctl('disable', '--now', ...removed.map((path) => basename(path)))] : [],
        after: [
          systemctl('daemon-reload'),
          // The running daemon and its sockets were made from the old files: the next connection starts the new one.
          ...(upgrading ? [systemctl('stop', SERVICE_UNIT, ...sockets)] : []),
          systemctl('enable', '--now', ...sockets),
        ],
      };
    },
    uninstallCommands(present) {
      const names = present.map((path) => basename(path));
      return {
        before: names.length > 0 ? [{ ...systemctl('disable', '--now', ...names), tolerate: /not loaded|does not exist|not found/i }] : [],
        after: [systemctl('daemon-reload')],
      };
    },
    async query(run, install): Promise<ManagerQuery> {
      const names = [SOCKET_UNIT, ...socketsOf(systemdUnits(install, unitDir(install))).filter((name) => name !== SOCKET_UNIT), SERVICE_UNIT];
      const result = await run(['systemctl', '--user', 'show', '--property=Id,LoadState,ActiveState,SubState,UnitFileState,MainPID', ...names]);
      const unavailable = this.unavailable(result);
      if (unavailable !== undefined) return { unavailable, units: [], loaded: false };
      if (result.status !== 0) return { unavailable: `\`systemctl --user show\` failed: ${firstLine(result)}`, units: [], loaded: false };
      const units = result.stdout
        .trim()
        .split(/\n\s*\n/)
        .map(parseShow)
        .map((unit): UnitState => describeUnit(unit));
      return { unavailable: undefined, units, loaded: units.some((unit) => unit.ok) };
    },
    unavailable(result: CommandResult) {
      if (result.missing) return 'systemctl is not installed: this system does not run systemd';
      if (result.timedOut) return "systemd's user manager did not answer within 15 s";
      const text = `${result.stderr}\n${result.stdout}`;
      // The last: a session bus without a user manager behind it (D-Bus cannot activate org.freedesktop.systemd1).
      if (/Failed to connect to bus|\$DBUS_SESSION_BUS_ADDRESS|XDG_RUNTIME_DIR|No medium found|Transport endpoint|org\.freedesktop\.systemd1/i.test(text)) {
        return `no systemd user manager answers for this session (${firstLine(result)})`;
      }
      return undefined;
    },
  };
}

function firstLine(result: CommandResult): string {
  const text = (result.stderr.trim() || result.stdout.trim() || (result.status === undefined ? 'no exit status' : `exit status ${result.status}`)).split('\n')[0] ?? '';
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function parseShow(block: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const row of block.split('\n')) {
    const at = row.indexOf('=');
    if (at > 0) fields[row.slice(0, at)] = row.slice(at + 1);
  }
  return fields;
}

function describeUnit(fields: Record<string, string>): UnitState {
  const name = fields.Id ?? '?';
  if (fields.LoadState !== 'loaded') return { name, state: fields.LoadState ?? 'unknown', ok: false };
  const active = `${fields.ActiveState ?? '?'} (${fields.SubState ?? '?'})`;
  const pid = fields.MainPID !== undefined && fields.MainPID !== '0' ? `, pid ${fields.MainPID}` : '';
  if (name.endsWith('.service')) {
    // Socket-activated: inactive until the first connection is as healthy as running.
    return { name, state: `${active}${pid}`, ok: fields.ActiveState !== 'failed' };
  }
  const enabled = fields.UnitFileState ?? '?';
  return { name, state: `${enabled}, ${active}`, ok: enabled === 'enabled' && fields.ActiveState === 'active' };
}
