/**
 * The first hour in a real terminal (tmux): the sign-in as a person at an SSH session or a headless
 * box does it, with the real daemon and CLI against the OAuth stand-in. What is checked is what the
 * person sees and what is left of their terminal afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { consentViaHttp, obtainRedirectUrl } from '../helpers/consent-driver.js';
import { AUTH_URL_LINE, BIN, daemonDirs, daemonEnv, startDaemonProcess, stopAllDaemons, type DaemonProcess } from '../helpers/daemon-process.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { requirements, skipUnless } from '../helpers/requirements.js';
import { Terminal } from '../helpers/terminal.js';


let standin: StandinHandle;
before(async () => {
  standin = await startStandin();
});
after(async () => {
  await stopAllDaemons();
  await standin?.stop();
});

async function session(name: string, extraEnv: NodeJS.ProcessEnv) {
  const dirs = daemonDirs();
  const env = daemonEnv(dirs, { TOKEND_STORE: 'memory' });
  const daemon: DaemonProcess = await startDaemonProcess({ name, env, socket: dirs.socket });
  const clientFile = standin.writeClientSecrets(dirs.root);
  // What a terminal over SSH, or on a headless box, has: no display, no BROWSER.
  const terminalEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dirs.root, TERM: 'xterm-256color', TOKEND_SOCKET: dirs.socket, ...extraEnv };
  const terminal = await Terminal.start(terminalEnv);
  const login = `${process.execPath} ${BIN} login --client-secrets ${clientFile} --scopes bigquery`;
  return { daemon, terminal, login };
}

describe('sign-in in a real terminal', { skip: skipUnless(requirements.tmux) }, () => {
  test('regression: a login without --no-browser on a box with no display falls into the paste-back flow by itself, and ends', async () => {
    const { daemon, terminal, login } = await session('terminal-headless', {});
    try {
      await terminal.type('stty -a | md5sum');
      const [sttyBefore] = await terminal.waitFor(/^[0-9a-f]{32}/m);
      await terminal.type(`${login}; echo "exit=$?"`);
      await terminal.waitFor(/No browser can be opened here \(there is no display \(DISPLAY and WAYLAND_DISPLAY are unset\)\)/);
      const [, authUrl] = await terminal.waitFor(AUTH_URL_LINE);
      assert.doesNotMatch(await terminal.screen(), /Opened the browser/);
      const redirect = await obtainRedirectUrl(authUrl!);
      await terminal.type(redirect);
      await terminal.waitFor(/Logged in as alice@example\.com/);
      await terminal.waitFor(/Make alice@example\.com the default account .* \[Y\/n\] $/m);
      await terminal.type('y');
      await terminal.waitFor(/^exit=0$/m);
      await terminal.type('stty -a | md5sum; echo typed-after-login');
      await terminal.waitFor(/^typed-after-login$/m);
      const hashes = (await terminal.screen()).match(/^[0-9a-f]{32}/gm) ?? [];
      assert.equal(hashes.at(-1), sttyBefore, 'the terminal settings are as they were');
    } finally {
      await terminal.stop();
      await daemon.stop();
    }
  });

  test('regression: login --no-browser over SSH ends by itself when the redirect reaches the daemon directly (ssh -L), leaving the shell usable', async () => {
    const { daemon, terminal, login } = await session('terminal-ssh', { SSH_CONNECTION: '10.0.0.2 50000 10.0.0.1 22', DISPLAY: ':0' });
    try {
      await terminal.type(`${login} --no-browser --default; echo "exit=$?"`);
      const [, authUrl] = await terminal.waitFor(AUTH_URL_LINE);
      assert.equal((await consentViaHttp(authUrl!)).status, 200);
      await terminal.waitFor(/^exit=0$/m);
      const screen = await terminal.screen();
      assert.match(screen, /Logged in as alice@example\.com/);
      assert.match(screen, /Granted scopes: bigquery$/m, 'short names, no identity scopes');
      assert.doesNotMatch(screen, /already been completed|Paste the address again/);
      await terminal.type('echo typed-after-login');
      await terminal.waitFor(/^typed-after-login$/m);
    } finally {
      await terminal.stop();
      await daemon.stop();
    }
  });
});
