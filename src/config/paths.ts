import { homedir, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The daemon's socket when TOKEND_SOCKET and the config say nothing: the per-user runtime directory
 * where there is one (systemd sessions), else a private directory under the per-user temp dir
 * (macOS's $TMPDIR is per user; elsewhere the directory is named after the uid and its ownership and
 * mode are checked before use, as tmux does).
 */
export function defaultSocketPath(env: Env, platform = process.platform, uid = userInfo().uid): string {
  const runtimeDir = env.XDG_RUNTIME_DIR;
  if (runtimeDir !== undefined && runtimeDir !== '') return join(runtimeDir, 'tokend', 'tokend.sock');
  const base = platform === 'darwin' ? (env.TMPDIR ?? tmpdir()) : '/tmp';
  return join(base, `tokend-${uid}`, 'tokend.sock');
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
