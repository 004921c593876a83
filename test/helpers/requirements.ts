import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Suites that need real third-party software (Chromium, a Secret Service) call this. Outside CI a
 * missing tool skips the suite and names the Debian packages that bring it; under CI=true a missing
 * tool fails the run, because nothing may skip there.
 */
export interface Requirement {
  binaries: string[];
  aptPackages: string[];
}

export const requirements = {
  chromium: { binaries: ['chromium'], aptPackages: ['chromium'] },
  keyring: {
    binaries: ['dbus-daemon', 'gnome-keyring-daemon', 'secret-tool'],
    aptPackages: ['dbus', 'gnome-keyring', 'libsecret-tools'],
  },
  strace: { binaries: ['strace'], aptPackages: ['strace'] },
} satisfies Record<string, Requirement>;

export function which(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** `false` when everything is there, else the skip reason; throws under CI=true. */
export function skipUnless(requirement: Requirement): string | false {
  const missing = requirement.binaries.filter((b) => which(b) === undefined);
  if (missing.length === 0) return false;
  const reason = `needs ${missing.join(', ')}: apt-get install ${requirement.aptPackages.join(' ')}`;
  if (process.env.CI === 'true') {
    throw new Error(`CI=true and a required tool is missing (${reason})`);
  }
  return reason;
}
