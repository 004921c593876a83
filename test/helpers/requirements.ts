import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

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
  tmux: { binaries: ['tmux'], aptPackages: ['tmux'] },
  fish: { binaries: ['fish'], aptPackages: ['fish'] },
  systemdSocketActivate: { binaries: ['systemd-socket-activate'], aptPackages: ['systemd'] },
  systemdAnalyze: { binaries: ['systemd-analyze'], aptPackages: ['systemd'] },
  tinyproxy: { binaries: ['tinyproxy'], aptPackages: ['tinyproxy'] },
  /** The system python's plistlib (standard library), a real property-list parser. */
  pythonPlistlib: { binaries: ['/usr/bin/python3'], aptPackages: ['python3'] },
  /** The Cloud SDK comes from Google's own apt repository (packages.cloud.google.com), not Debian's. */
  gcloud: { binaries: ['gcloud', 'bq'], aptPackages: ['google-cloud-cli'] },
  /** Debian's python3-google-auth, run with the system python (not a pyenv shim). */
  pythonGoogleAuth: { binaries: ['/usr/lib/python3/dist-packages/google/auth/__init__.py', '/usr/lib/python3/dist-packages/requests/__init__.py'], aptPackages: ['python3-google-auth', 'python3-requests'] },
  /** mount(8) for a tmpfs that can fill up or turn read-only; the suites that use it run as root. */
  mount: { binaries: ['mount', 'umount'], aptPackages: ['mount'] },
} satisfies Record<string, Requirement>;

/** `false` as root, else the skip reason; throws under CI=true (CI runs as root). */
export function skipUnlessRoot(why: string): string | false {
  if (process.getuid?.() === 0) return false;
  if (process.env.CI === 'true') throw new Error(`CI=true and not root: ${why}`);
  return `needs root: ${why}`;
}

/** A program on the PATH, or an absolute path that must exist (a library's file). */
export function which(binary: string): string | undefined {
  if (isAbsolute(binary)) {
    try {
      accessSync(binary, constants.R_OK);
      return binary;
    } catch {
      return undefined;
    }
  }
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

/** `false` when everything is there, else the skip reason naming every missing tool and its packages; throws under CI=true. */
export function skipUnless(...needed: Requirement[]): string | false {
  const lacking = needed.filter((requirement) => requirement.binaries.some((b) => which(b) === undefined));
  if (lacking.length === 0) return false;
  const missing = lacking.flatMap((requirement) => requirement.binaries.filter((b) => which(b) === undefined));
  const packages = [...new Set(lacking.flatMap((requirement) => requirement.aptPackages))];
  const reason = `needs ${missing.join(', ')}: apt-get install ${packages.join(' ')}`;
  if (process.env.CI === 'true') {
    throw new Error(`CI=true and a required tool is missing (${reason})`);
  }
  return reason;
}
