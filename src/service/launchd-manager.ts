import { dirname } from 'node:path';
import type { Installation } from './installation.js';
import { launchAgent, launchAgentPath, launchdLogPath, LAUNCHD_LABEL } from './launchd-plist.js';
import type { ManagerQuery, ServiceManager } from './manager.js';
import type { CommandResult } from './run-command.js';

const NOT_LOADED = /could not find service|no such process|not loaded|service is disabled/i;
const domain = (install: Installation) => `gui/${install.uid}`;
const target = (install: Installation) => `${domain(install)}/${LAUNCHD_LABEL}`;

export function launchdManager(): ServiceManager {
  return {
    kind: 'launchd',
    description: 'launchd (a LaunchAgent)',
    files: (install) => [launchAgent(install)],
    knownPaths: (install) => [launchAgentPath(install.home)],
    directories: (install) => [dirname(launchAgentPath(install.home)), dirname(launchdLogPath(install.home))],
    ownDirectories: (install) => [dirname(launchdLogPath(install.home))],
    enableLinks: () => [],
    unreachableManager: () => undefined,
    installCommands({ upgrading, loaded }, install) {
      if (loaded && !upgrading) return { before: [], after: [] };
      const after = [
        // launchd keeps the definition it loaded: an upgrade unloads it first.
        ...(loaded ? [{ argv: ['launchctl', 'bootout', target(install)], tolerate: NOT_LOADED }] : []),
        { argv: ['launchctl', 'enable', target(install)] },
        { argv: ['launchctl', 'bootstrap', domain(install), launchAgentPath(install.home)], tolerate: /already (loaded|bootstrapped)|service already/i },
      ];
      return { before: [], after };
    },
    uninstallCommands(present, install) {
      return { before: present.length > 0 ? [{ argv: ['launchctl', 'bootout', target(install)], tolerate: NOT_LOADED }] : [], after: [] };
    },
    async query(run, install): Promise<ManagerQuery> {
      const result = await run(['launchctl', 'print', target(install)]);
      const unavailable = this.unavailable(result);
      if (unavailable !== undefined) return { unavailable, units: [], loaded: false };
      if (result.status !== 0) {
        return { unavailable: undefined, units: [{ name: LAUNCHD_LABEL, state: 'not loaded', ok: false }], loaded: false };
      }
      const state = /^\s*state = (.+)$/m.exec(result.stdout)?.[1]?.trim() ?? 'loaded';
      const pid = /^\s*pid = (\d+)$/m.exec(result.stdout)?.[1];
      return { unavailable: undefined, units: [{ name: LAUNCHD_LABEL, state: pid === undefined ? state : `${state}, pid ${pid}`, ok: state === 'running' }], loaded: true };
    },
    unavailable(result: CommandResult) {
      if (result.missing) return 'launchctl is not installed: this system does not run launchd (macOS only)';
      if (result.timedOut) return 'launchd did not answer within 15 s';
      return undefined;
    },
  };
}
