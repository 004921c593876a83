import { spawn } from 'node:child_process';
import { withoutSecrets } from '../config/config.js';

export interface OpenResult {
  opened: boolean;
  how: string;
}

/**
 * Opens `url` in a browser: `$BROWSER` (run by the shell, the URL as its last argument, never spliced
 * into the command line), else the platform opener. Only http(s) URLs are opened.
 */
export function openBrowser(url: string, env: Readonly<Record<string, string | undefined>>): Promise<OpenResult> {
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
    child.once('error', () => resolve({ opened: false, how: `${how} could not be started` }));
    child.once('spawn', () => {
      child.unref();
      resolve({ opened: true, how });
    });
  });
}
