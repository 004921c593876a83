import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The daemon's socket when TOKEND_SOCKET and the config say nothing: the per-user runtime directory
 * where there is one (systemd sessions), else a directory in the user's own state directory. Never a
 * predictable name in a shared directory such as /tmp, which another user could create first.
 */
export function defaultSocketPath(env: Env, platform = process.platform, home = homeOf(env)): string {
  const runtimeDir = absolute(env.XDG_RUNTIME_DIR);
  if (runtimeDir !== undefined) return join(runtimeDir, 'tokend', 'tokend.sock');
  if (platform === 'darwin') return join(home, 'Library', 'Caches', 'tokend', 'tokend.sock');
  return join(absolute(env.XDG_STATE_HOME) ?? join(home, '.local', 'state'), 'tokend', 'tokend.sock');
}

/** The XDG base directory spec: a relative (or empty) value is ignored, not resolved against the cwd. */
function absolute(value: string | undefined): string | undefined {
  return value !== undefined && isAbsolute(value) ? value : undefined;
}

function homeOf(env: Env): string {
  return absolute(env.HOME) ?? homedir();
}

/** Configuration and non-secret state. */
export function defaultConfigDir(env: Env, platform = process.platform, home = homeOf(env)): string {
  const explicit = env.TOKEND_CONFIG_DIR;
  if (explicit !== undefined && explicit !== '') return explicit;
  const xdg = absolute(env.XDG_CONFIG_HOME);
  if (xdg !== undefined) return join(xdg, 'tokend');
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'tokend');
  return join(home, '.config', 'tokend');
}
