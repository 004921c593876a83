/**
 * The first run on a machine without a keychain, and the move to the keychain once there is one:
 * the real daemon and CLI, the OAuth stand-in, gnome-keyring on a private bus, and a real crash at
 * the move's commit point (strace holds the fsync of the marker while the daemon is killed).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { FileStore } from '../../src/store/file-store.js';
import { daemonDirs, daemonEnv, runCli, startDaemonProcess, stopAllDaemons, loginByPasteBack } from '../helpers/daemon-process.js';
import { noSecretServiceEnv, startKeyringSession, type KeyringSession } from '../helpers/keyring-session.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { requirements, skipUnless } from '../helpers/requirements.js';
import { holdFsyncs } from '../helpers/strace.js';

const PASSPHRASE = 'migration test passphrase';

let standin: StandinHandle;
let keyring: KeyringSession | undefined;
const skip = skipUnless(requirements.keyring, requirements.strace);
before(async () => {
  standin = await startStandin();
  if (skip === false) keyring = await startKeyringSession();
});
after(async () => {
  await stopAllDaemons();
  await keyring?.stop();
  await standin?.stop();
});

async function fileRecords(configDir: string): Promise<string[]> {
  const store = new FileStore(configDir, { passphrase: PASSPHRASE, logger: silentLogger() });
  await store.open();
  return (await store.findCredentials('tokend')).map((credential) => credential.account);
}

/** A login on a machine without a Secret Service: the accounts land in the (encrypted) file store. */
async function firstRunWithoutKeychain(name: string) {
  const dirs = daemonDirs();
  const env = daemonEnv(dirs, { ...noSecretServiceEnv(), TOKEND_STORE: 'auto', TOKEND_FILE_PASSPHRASE: PASSPHRASE, BROWSER: 'false' });
  const clientFile = standin.writeClientSecrets(dirs.root);
  const daemon = await startDaemonProcess({ name, env, socket: dirs.socket });
  assert.equal(existsSync(join(dirs.configDir, 'store.json')), false, 'regression: a start with no account records no store');
  assert.equal((await loginByPasteBack(['--client-secrets', clientFile, '--scopes', 'bigquery', '--default'], env)).code, 0);
  assert.match(readFileSync(join(dirs.configDir, 'store.json'), 'utf8'), /"kind":"file"/);
  await daemon.stop();
  // The same user, later, with a working keychain.
  const withKeychain = { ...keyring!.env, TOKEND_SOCKET: dirs.socket, TOKEND_CONFIG_DIR: dirs.configDir, TOKEND_STORE: 'auto', TOKEND_FILE_PASSPHRASE: PASSPHRASE };
  return { dirs, env: withKeychain };
}

describe('from the file store to the keychain', { skip }, () => {
  test('tokend store migrate --to keychain moves the account without a new consent; the file keeps no copy', async () => {
    const { dirs, env } = await firstRunWithoutKeychain('migrate-1');
    const daemon = await startDaemonProcess({ name: 'migrate-2', env, socket: dirs.socket });
    try {
      const before = await runCli(['status'], env);
      assert.match(before.stdout, /auto: the file store \S+ \(encrypted\) held your account at start$/m);
      assert.match(before.stdout, /The OS keychain is usable now.*run `tokend store migrate --to keychain`/);

      const moved = await runCli(['store', 'migrate', '--to', 'keychain'], env);
      assert.equal(moved.code, 0, moved.stderr);
      assert.match(moved.stdout, /^Moved 1 account \(alice@example\.com\) to the Secret Service \(org\.freedesktop\.secrets\)\.$/m);
      assert.deepEqual(await fileRecords(dirs.configDir), [], 'the file store no longer holds the refresh token');
      const items = await keyring!.search('tokend');
      assert.deepEqual(items.map((item) => item.account), ['alice@example.com']);
      assert.match(readFileSync(join(dirs.configDir, 'store.json'), 'utf8'), /"kind":"keychain"/);

      const status = JSON.parse((await runCli(['status', '--json'], env)).stdout);
      assert.equal(status.store.kind, 'keychain');
      const grants = standin.stats.codeGrants;
      const token = await runCli(['token', '--scopes', 'bigquery'], env);
      assert.equal(token.code, 0, token.stderr);
      assert.equal(standin.stats.codeGrants, grants, 'no new consent');
    } finally {
      await daemon.stop();
    }
    const restarted = await startDaemonProcess({ name: 'migrate-3', env, socket: dirs.socket });
    try {
      assert.match(restarted.log(), /auto: the OS keychain is reachable/);
      const token = await runCli(['token', '--scopes', 'bigquery'], env);
      assert.equal(token.code, 0, token.stderr);
    } finally {
      await restarted.stop();
    }
  });

  test('killed at the commit point (the marker write held in fsync): the restart finds the account in the file store, and the move can be run again', async () => {
    const { dirs, env } = await firstRunWithoutKeychain('crash-migrate-1');
    const daemon = await startDaemonProcess({ name: 'crash-migrate-2', env, socket: dirs.socket });
    const tracer = await holdFsyncs(daemon.child.pid!, 30);
    try {
      const pending = runCli(['store', 'migrate', '--to', 'keychain'], env, undefined, 60_000).catch(() => undefined);
      const deadline = Date.now() + 15_000;
      while (!readdirSync(dirs.configDir).some((name) => name.startsWith('.store.json.')) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(readdirSync(dirs.configDir).some((name) => name.startsWith('.store.json.')), 'the marker write is held');
      daemon.child.kill('SIGKILL');
      await daemon.exited;
      void pending;
    } finally {
      tracer.stop();
    }
    assert.match(readFileSync(join(dirs.configDir, 'store.json'), 'utf8'), /"kind":"file"/, 'the marker still names the file store');
    assert.deepEqual(await fileRecords(dirs.configDir), ['alice@example.com'], 'the file store was not touched');

    const restarted = await startDaemonProcess({ name: 'crash-migrate-3', env, socket: dirs.socket });
    try {
      const token = await runCli(['token', '--scopes', 'bigquery'], env);
      assert.equal(token.code, 0, token.stderr);
      const again = await runCli(['store', 'migrate', '--to', 'keychain'], env);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await fileRecords(dirs.configDir), []);
      assert.equal((await runCli(['token', '--scopes', 'bigquery'], env)).code, 0);
    } finally {
      await restarted.stop();
    }
  });
});
