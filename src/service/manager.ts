import type { Installation } from './installation.js';
import type { CommandResult, RunCommand } from './run-command.js';
import type { ServiceFile } from './systemd-units.js';

export type ManagerKind = 'systemd' | 'launchd';

export interface ManagerCommand {
  argv: string[];
  /** A failure whose output matches is what the command was there to ensure anyway ("not loaded"). */
  tolerate?: RegExp;
}

export interface UnitState {
  name: string;
  /** What the manager says, in its own words (`enabled`, `active (listening)`, `running, pid 123`). */
  state: string;
  ok: boolean;
}

export interface ManagerQuery {
  /** Undefined when the manager answered; otherwise why not, for a person. */
  unavailable: string | undefined;
  units: UnitState[];
  /** The service is loaded (launchd) or its units are known to the manager (systemd). */
  loaded: boolean;
}

export interface InstallChange {
  /** Files of an earlier install are being replaced: what the manager loaded from them must be reloaded. */
  upgrading: boolean;
  /** The manager has the service loaded now. */
  loaded: boolean;
  /** Files of an earlier install that this one no longer writes. */
  removed: string[];
  files: ServiceFile[];
}

/** One service manager: the files it reads, and the commands that load, start, stop and describe them. */
export interface ServiceManager {
  readonly kind: ManagerKind;
  readonly description: string;
  files(install: Installation): ServiceFile[];
  /** Every file any install writes (metadata socket included), to find what an earlier install left. */
  knownPaths(install: Installation): string[];
  /** Directories the files, and the logs, go in. */
  directories(install: Installation): string[];
  /** Those of them that are tokend's alone, removed by uninstall once empty. */
  ownDirectories(install: Installation): string[];
  /** What enabling left besides the files (systemd's `.wants/` links): removed by hand when no manager can. */
  enableLinks(install: Installation): string[];
  /** Set when a manager runs for this user that this shell cannot reach: removing files then would strand it. */
  unreachableManager(install: Installation, env: Readonly<Record<string, string | undefined>>): string | undefined;
  /** `before` runs while the files of `removed` still exist (to name what they defined), `after` once they are gone. */
  installCommands(change: InstallChange, install: Installation): { before: ManagerCommand[]; after: ManagerCommand[] };
  uninstallCommands(present: string[], install: Installation): { before: ManagerCommand[]; after: ManagerCommand[] };
  query(run: RunCommand, install: Installation): Promise<ManagerQuery>;
  /** Why a failed command means no manager is there to ask, or undefined when it is a real failure. */
  unavailable(result: CommandResult): string | undefined;
}
