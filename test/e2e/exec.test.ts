/** `tokend exec`: the real CLI runs a real command, with the environment, its exit status and signals passed through. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { BIN, runCli } from '../helpers/daemon-process.js';
import { requirements, skipUnless } from '../helpers/requirements.js';

const base = { PATH: process.env.PATH, HOME: '/nonexistent', TOKEND_SOCKET: '/tmp/tokend-exec-test.sock', TOKEND_METADATA_PORT: '8085', TOKEND_FILE_PASSPHRASE: 'not for children' };

test('the command gets the environment of `tokend env`, the scopes and the account, and none of tokend\'s secrets; its exit status is tokend\'s', async () => {
  const result = await runCli(
    ['exec', '--scopes', 'bigquery', '--account', 'bob@example.com', '--', 'sh', '-c', 'echo "$GCE_METADATA_HOST|$GCE_METADATA_IP|$GCE_METADATA_ROOT|$TOKEND_SOCKET|$TOKEND_SCOPES|$TOKEND_ACCOUNT|${TOKEND_FILE_PASSPHRASE:-none}"; exit 7'],
    base,
  );
  assert.equal(result.code, 7);
  assert.equal(result.stdout, '127.0.0.1:8085|127.0.0.1:8085|127.0.0.1:8085|/tmp/tokend-exec-test.sock|bigquery|bob@example.com|none\n');
  const flags = await runCli(['exec', '--', 'sh', '-c', 'echo "$@"', 'sh', '--help', '-x'], base);
  assert.equal(flags.stdout, '--help -x\n', 'what follows -- is the command\'s');
  const missing = await runCli(['exec', '--', 'no-such-command-here'], base);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /cannot run no-such-command-here \(ENOENT\)/);
});

test('a signal to tokend exec reaches the command; a command killed by signal N makes it exit 128+N', async () => {
  const child = spawn(process.execPath, [BIN, 'exec', '--', 'sh', '-c', `trap 'echo got-term; kill $!; exit 3' TERM; echo ready; sleep 20 & wait`], { env: base, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve) => child.stdout.on('data', (chunk: Buffer) => ((out += chunk.toString()), out.includes('ready') && resolve())));
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.match(out, /got-term/, 'the command received SIGTERM');
  assert.equal(code, 3, 'and its status is passed through');
  const killed = await runCli(['exec', '--', 'sh', '-c', 'kill -KILL $$'], base);
  assert.equal(killed.code, 128 + 9);
});

test('regression: a signal that arrives while the command is being started is passed on, not fatal to tokend exec', { skip: skipUnless(requirements.strace) }, async () => {
  // strace holds the return of tokend's one fork (clone) for a second: the command starts, says ready
  // with tokend's pid, and the signal reaches tokend before its spawn() has returned.
  const script = `trap 'echo got-term; kill $!; exit 3' TERM; echo "ready $PPID"; sleep 20 & wait`;
  const tracer = spawn('strace', ['-o', '/dev/null', '-e', 'trace=clone', '-e', 'inject=clone:delay_exit=1000000', process.execPath, BIN, 'exec', '--', 'sh', '-c', script], {
    env: base,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const tokendPid = await new Promise<number>((resolve) =>
    tracer.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const ready = /ready (\d+)/.exec(out);
      if (ready !== null) resolve(Number(ready[1]));
    }),
  );
  process.kill(tokendPid, 'SIGTERM');
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => tracer.once('exit', (c, s) => resolve([c, s])));
  assert.deepEqual([code, signal], [3, null], 'tokend exec lived on and exited with the command\'s status');
  assert.match(out, /got-term/, 'the command received the signal');
});
