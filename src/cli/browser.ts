import { spawn } from 'node:child_process';
import { withoutSecrets } from '../config/config.js';

type Env = Readonly<Record<string, string | undefined>>;

export interface OpenResult {
  opened: boolean;
  how: string;
}

/** An opener that has not failed by then is taken to have opened a browser (a `$BROWSER` may run until it is closed). */
const OPENER_VERDICT_MS = 3_000;

/**
 * Why no browser can be shown to the person at this terminal, or undefined when one can (or
 * `$BROWSER` says how). Like gcloud: over SSH, and on Linux without a display, the browser would open
 * on another screen, or nowhere.
 */
export function whyNoBrowser(env: Env, platform = process.platform): string | undefined {
  if (env.BROWSER !== undefined && env.BROWSER.trim() !== '') return undefined;
  if (env.SSH_CONNECTION !== undefined || env.SSH_TTY !== undefined) return 'this is an SSH session';
  if (platform === 'linux' && !env.DISPLAY && !env.WAYLAND_DISPLAY) return 'there is no display (DISPLAY and WAYLAND_DISPLAY are unset)';
  return undefined;
}

/**
 * Opens `url` in a browser: `$BROWSER` (run by the shell, the URL as its last argument, never spliced
 * into the command line), else the platform opener. Only http(s) URLs are opened. An opener that
 * exits non-zero (xdg-open: "no method available") has not opened anything.
 */
export function openBrowser(url: string, env: Env, verdictMs = OPENER_VERDICT_MS): Promise<OpenResult> {
  const protocol = new URL(url).protocol;
  if (protocol !== 'https:' && protocol !== 'http:') {
    return Promise.resolve({ opened: false, how: `refused to open a ${protocol} URL` });
  }
  const browser = env.BROWSER;
  const [command, args, how] =
    browser !== undefined && browser.trim() !== ''
      ? ['/bin/sh', ['-c', `${browser} "$1"`, 'tokend-browser', url], `$BROWSER (${browser})`]
      : process.platform === 'darwin'
        ? ['open', [url], 'open']
        : ['xdg-open', [url], 'xdg-open'];
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'ignore', detached: true, env: withoutSecrets(env) });
    const timer = setTimeout(() => {
      child.unref();
      resolve({ opened: true, how });
    }, verdictMs);
    timer.unref();
    child.once('error', () => {
      clearTimeout(timer);
      resolve({ opened: false, how: `${how} could not be started` });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code === 0 ? { opened: true, how } : { opened: false, how: `${how} failed (${signal ?? `exit status ${String(code)}`})` });
    });
  });
}
