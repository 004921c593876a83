/**
 * A real crash in the middle of a store write: the daemon's fsync is held by strace (fault injection
 * on the syscall), the daemon is killed with SIGKILL while the new file exists only as a temp file,
 * and the upstream has already rotated the refresh token. The next start must lose nothing.
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { daemonDirs, daemonEnv, runCli, stopAllDaemons, startDaemonProcess, loginByPasteBack } from '../helpers/daemon-process.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { requirements, skipUnless } from '../helpers/requirements.js';
import { recordFigure } from '../helpers/figures.js';
import { holdFsyncs } from '../helpers/strace.js';


let standin: StandinHandle;
before(async () => {
  standin = await startStandin({ rotateRefreshTokens: true });
});
after(async () => {
  await stopAllDaemons();
  await standin?.stop();
});


const tempFiles = (dir: string) => readdirSync(dir).filter((name) => name.startsWith('.secrets.json.') && name.endsWith('.tmp'));

describe('crash during a store write', { skip: skipUnless(requirements.strace) }, () => {
  test('regression: kill -9 while a rotated refresh token is only in the temp file — the restart recovers it', async () => {
    const dirs = daemonDirs();
    const env = daemonEnv(dirs, { TOKEND_STORE: 'file', TOKEND_FILE_PASSPHRASE: 'correct horse battery staple', BROWSER: 'false' });
    const clientFile = standin.writeClientSecrets(dirs.root);
    const first = await startDaemonProcess({ name: 'crash-1', env, socket: dirs.socket });
    assert.equal((await loginByPasteBack(['--client-secrets', clientFile, '--scopes', 'bigquery,cloud-platform'], env)).code, 0);

    const tracer = await holdFsyncs(first.child.pid!, 30);
    try {
      const rotationsBefore = standin.stats.refreshGrants;
      // This refresh rotates the refresh token upstream; storing the new one hangs in fsync.
      const pending = runCli(['token', '--scopes', 'bigquery'], env, undefined, 60_000).catch(() => undefined);
      const deadline = Date.now() + 15_000;
      while ((standin.stats.refreshGrants === rotationsBefore || !tempFiles(dirs.configDir).some((name) => statSync(join(dirs.configDir, name)).size > 0)) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(tempFiles(dirs.configDir).length > 0, 'the write is held in fsync with its temp file complete');
      await new Promise((resolve) => setTimeout(resolve, 200));
      first.child.kill('SIGKILL');
      await first.exited;
      void pending;
    } finally {
      tracer.stop();
    }

    const second = await startDaemonProcess({ name: 'crash-2', env, socket: dirs.socket });
    try {
      assert.match(second.log(), /"event":"store_recovered"/);
      assert.deepEqual(tempFiles(dirs.configDir), [], 'no temp file is left behind');
      // A new scope set goes upstream with the recovered (rotated) refresh token.
      const token = await runCli(['token', '--scopes', 'cloud-platform'], env);
      assert.equal(token.code, 0, token.stderr);
      const status = JSON.parse((await runCli(['status', '--json'], env)).stdout);
      assert.equal(status.accounts[0].health.state, 'ok');
      recordFigure({ kind: 'fault', faultClass: 'process', name: 'kill -9 during the store write of a rotated token', survived: true, caller: 'after restart: 200 with the rotated token recovered', log: 'store_recovered' });
    } finally {
      await second.stop();
    }
  });
});
