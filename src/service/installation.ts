import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { isAbsolute } from 'node:path';
import { SECRET_ENVIRONMENT, SETTINGS_ENVIRONMENT, type Config } from '../config/config.js';
import type { Env } from '../config/paths.js';
import { ConfigError, InternalError } from '../errors.js';
import { PACKAGE_ROOT } from '../package-root.js';
import { VERSION } from '../version.js';

/** What a service definition must name to run this copy of tokend as this user, as `tokend serve` runs here. */
export interface Installation {
  version: string;
  /** Absolute paths: a service manager has no PATH worth trusting and no working directory. */
  node: string;
  entry: string;
  /** The checkout or package the entry belongs to (its README is the unit's documentation). */
  root: string;
  args: string[];
  home: string;
  uid: number;
  configDir: string;
  /** Not chosen by TOKEND_CONFIG_DIR: the service finds it the same way, under its own XDG_CONFIG_HOME. */
  configDirIsDefault: boolean;
  /** Set when the socket was chosen (flag, environment, config), so the service must be told; else the default. */
  socket: { path: string; chosen: boolean };
  metadataPort: number | undefined;
  /** The installing shell's variables that change what `serve` does, minus secrets: the service does as `serve` would there. */
  environment: Record<string, string>;
  /** Secrets the installing shell holds that the service will not get, by name. */
  withheld: string[];
}

export function describeInstallation(config: Config, env: Env): Installation {
  const entry = `${PACKAGE_ROOT}/bin/tokend.js`;
  if (!existsSync(entry)) {
    throw new InternalError(`this copy of tokend has no entry point at ${entry}`, { hint: 'reinstall tokend (`npm ci` in its checkout), then run `tokend service install` again' });
  }
  const environment: Record<string, string> = {};
  const withheld: string[] = [];
  for (const name of [...SETTINGS_ENVIRONMENT].sort()) {
    const value = env[name];
    if (value !== undefined && value !== '' && name !== 'TOKEND_SOCKET') environment[name] = value;
  }
  for (const name of SECRET_ENVIRONMENT) if ((env[name] ?? '') !== '') withheld.push(name);
  // Resolved here: the service has no working directory to resolve a relative one against.
  if (environment.TOKEND_CONFIG_DIR !== undefined) environment.TOKEND_CONFIG_DIR = config.configDir;
  const chosen = config.sources.socket !== 'default';
  // A newline would start a directive of its own in a unit file, or an element in the plist.
  const values: Record<string, string> = { ...environment, 'the socket path': config.settings.socket, 'the config directory': config.configDir, 'the path of node': process.execPath, 'the path of tokend': entry };
  for (const [name, value] of Object.entries(values)) {
    if ([...value].some((char) => char.charCodeAt(0) < 0x20 || char.charCodeAt(0) === 0x7f)) {
      throw new ConfigError(`${name} holds a control character (a newline, say), which cannot go into a service file`, { hint: `fix ${name}, then run \`tokend service install\` again` });
    }
  }
  return {
    version: VERSION,
    node: process.execPath,
    entry,
    root: PACKAGE_ROOT,
    args: ['serve'],
    home: env.HOME !== undefined && isAbsolute(env.HOME) ? env.HOME : homedir(),
    uid: userInfo().uid,
    configDir: config.configDir,
    configDirIsDefault: (env.TOKEND_CONFIG_DIR ?? '') === '',
    socket: { path: config.settings.socket, chosen },
    metadataPort: config.settings.metadataPort,
    environment,
    withheld,
  };
}
