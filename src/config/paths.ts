import { homedir } from 'node:os';
import { join } from 'node:path';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The daemon's socket when TOKEND_SOCKET and the config say nothing: the per-user runtime directory
 * where there is one (systemd sessions), else a directory in the user's own state directory. Never a
 * predictable name in a shared directory such as /tmp, which another user could create first.
 */
export function defaultSocketPath(env: Env, platform = process.platform, home = env.HOME ?? homedir()): string {
  const runtimeDir = env.XDG_RUNTIME_DIR;
  if (runtimeDir !== undefined && runtimeDir !== '') return join(runtimeDir, 'tokend', 'tokend.sock');
  if (platform === 'darwin') return join(home, 'Library', 'Caches', 'tokend', 'tokend.sock');
  const state = env.XDG_STATE_HOME !== undefined && env.XDG_STATE_HOME !== '' ? env.XDG_STATE_HOME : join(home, '.local', 'state');
  return join(state, 'tokend', 'tokend.sock');
}

/** Configuration and non-secret state. */
export function defaultConfigDir(env: Env, platform = process.platform, home = env.HOME ?? homedir()): string {
  const explicit = env.TOKEND_CONFIG_DIR;
  if (explicit !== undefined && explicit !== '') return explicit;
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg !== undefined && xdg !== '') return join(xdg, 'tokend');
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'tokend');
  return join(home, '.config', 'tokend');
}
