/**
 * The fault suite, keychain part: the real daemon keeping its account in a real Secret Service
 * (gnome-keyring on a private D-Bus), with an OAuth server that rotates the refresh token on every
 * refresh, so each new token needs a keychain write. Mid-run the keychain freezes, locks, slows down
 * or goes away. For each: what the caller sees, what the log says, that cached tokens are still
 * served, and that the daemon recovers by itself when the keychain does.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { daemonDirs, daemonEnv, loginByPasteBack, runCli, startDaemonProcess, stopAllDaemons, type DaemonProcess } from '../helpers/daemon-process.js';
import { recordFigure } from '../helpers/figures.js';
import { startKeyringSession, type KeyringSession } from '../helpers/keyring-session.js';
import { getOverSocket } from '../helpers/metadata-client.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { requirements, skipUnless } from '../helpers/requirements.js';

const G = 'https://www.googleapis.com/auth/';
const SCOPES = Array.from({ length: 24 }, (_, i) => `${G}test.keychain-${i}`);
const KEYCHAIN_TIMEOUT_MS = 800;

let standin: StandinHandle;
let keyring: KeyringSession;
let daemon: DaemonProcess;
let env: NodeJS.ProcessEnv;
let socket: string;
let next = 0;

const skip = skipUnless(requirements.keyring);

before(async () => {
  if (skip !== false) return;
  standin = await startStandin({ rotateRefreshTokens: true, extraScopes: SCOPES });
  keyring = await startKeyringSession();
  const dirs = daemonDirs();
  socket = dirs.socket;
  mkdirSync(dirs.configDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dirs.configDir, 'config.json'), JSON.stringify({ keychainTimeoutMs: KEYCHAIN_TIMEOUT_MS }), { mode: 0o600 });
  env = daemonEnv(dirs, { ...keyring.vars, TOKEND_STORE: 'keychain', BROWSER: 'false' });
  daemon = await startDaemonProcess({ name: 'keychain-faults', env, socket });
  const login = await loginByPasteBack(['--client-secrets', standin.writeClientSecrets(dirs.root), '--scopes', SCOPES.join(',')], env);
  assert.equal(login.code, 0, login.stderr);
});
after(async () => {
  await stopAllDaemons();
  await keyring?.stop();
  await standin?.stop();
});

async function askFor(scope: string): Promise<{ status: number; code?: string; message?: string; ms: number }> {
  const started = performance.now();
  const answer = await getOverSocket(socket, `/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(scope)}`);
  const body = JSON.parse(answer.body) as { error?: { code: string; message: string } };
  return { status: answer.status, ms: performance.now() - started, ...(body.error === undefined ? {} : { code: body.error.code, message: body.error.message }) };
}

/** A new scope set: its refresh rotates the refresh token, which must be written to the keychain. */
const newScope = () => SCOPES[next++]!;

/** Asks for a new scope set until it is served (the keychain answers again), within `ms`. */
async function recovers(ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  const scope = newScope();
  for (;;) {
    const answer = await askFor(scope);
    if (answer.status === 200) return;
    assert.ok(Date.now() < deadline, `still failing after ${ms} ms: ${answer.code} ${answer.message}`);
    await sleep(300);
  }
}

describe('keychain faults', { skip }, () => {
  test('the Secret Service freezes mid-run: a rotation that must be stored fails within the limit as store_timeout, cached tokens are still served, and it recovers when the service does', async () => {
    const cached = newScope();
    assert.equal((await askFor(cached)).status, 200);
    const pid = await keyring.secretServicePid();
    const mark = daemon.log().length;
    process.kill(pid, 'SIGSTOP');
    try {
      const frozen = await askFor(newScope());
      assert.equal(frozen.status, 503);
      assert.equal(frozen.code, 'store_timeout');
      assert.ok(frozen.ms < KEYCHAIN_TIMEOUT_MS + 1500, `the caller waited ${frozen.ms.toFixed(0)} ms`);
      assert.equal((await askFor(cached)).status, 200, 'a cached token needs no keychain');
      assert.equal((await getOverSocket(socket, '/')).status, 200, 'the daemon answers');
      assert.match(daemon.log().slice(mark), /"code":"store_timeout"/);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await recovers();
    recordFigure({ kind: 'fault', faultClass: 'keychain', name: 'Secret Service frozen mid-run', survived: true, caller: '503 store_timeout within the limit; cached tokens 200', log: 'request_failed (store_timeout)' });
  });

  test('the Secret Service answers slowly (a pause shorter than the limit): every call succeeds', async () => {
    const pid = await keyring.secretServicePid();
    for (let i = 0; i < 3; i++) {
      process.kill(pid, 'SIGSTOP');
      const answered = askFor(newScope());
      await sleep(KEYCHAIN_TIMEOUT_MS / 3);
      process.kill(pid, 'SIGCONT');
      const answer = await answered;
      assert.equal(answer.status, 200, `${answer.code} ${answer.message}`);
      assert.ok(answer.ms >= KEYCHAIN_TIMEOUT_MS / 3 - 20, `the answer (${answer.ms.toFixed(0)} ms) waited for the paused keychain`);
    }
    recordFigure({ kind: 'fault', faultClass: 'keychain', name: 'slow Secret Service calls', survived: true, caller: '200, later', log: '—' });
  });

  test('the keyring is locked mid-run: the write is refused as a store error with a hint, cached tokens are served, and unlocking restores it', async () => {
    const cached = newScope();
    assert.equal((await askFor(cached)).status, 200);
    await keyring.lock();
    try {
      const locked = await askFor(newScope());
      assert.ok(locked.status === 503, `HTTP ${locked.status} ${locked.code}`);
      assert.match(locked.code ?? '', /^store_(unavailable|timeout)$/);
      assert.equal((await askFor(cached)).status, 200);
    } finally {
      await keyring.unlock();
    }
    await recovers();
    recordFigure({ kind: 'fault', faultClass: 'keychain', name: 'keyring locked mid-run', survived: true, caller: '503 store_unavailable; cached tokens 200', log: 'request_failed' });
  });

  test('the Secret Service goes away mid-run: writes fail as store errors, the daemon keeps serving, and it recovers once a Secret Service is back', async () => {
    const cached = newScope();
    assert.equal((await askFor(cached)).status, 200);
    const pid = await keyring.secretServicePid();
    process.kill(pid, 'SIGKILL');
    await sleep(200);
    const gone = await askFor(newScope());
    // D-Bus may start a fresh gnome-keyring on demand (its login keyring then locked) or find none.
    assert.ok(gone.status === 200 || /^store_(unavailable|timeout)$/.test(gone.code ?? ''), `HTTP ${gone.status} ${gone.code} ${gone.message}`);
    assert.equal((await askFor(cached)).status, 200);
    assert.equal((await getOverSocket(socket, '/')).status, 200);
    await keyring.unlock();
    await recovers();
    const status = await runCli(['status'], env);
    assert.equal(status.code, 0, status.stderr);
    recordFigure({ kind: 'fault', faultClass: 'keychain', name: 'Secret Service gone mid-run', survived: true, caller: '503 store_unavailable (or 200 from a Secret Service D-Bus started); cached tokens 200', log: 'request_failed' });
  });
});
