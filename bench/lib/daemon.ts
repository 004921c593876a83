/**
 * A real `tokend serve` for the bench: its log goes to a file (as to journald, not through a pipe this
 * process would have to read), and it is logged in to the OAuth stand-in through the real CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { consentViaHttp } from '../../test/helpers/consent-driver.js';
import { BIN, daemonDirs, startCli } from '../../test/helpers/daemon-process.js';
import type { StandinHandle } from '../../test/helpers/oauth-standin.js';

export interface BenchDaemon {
  child: ChildProcess;
  socket: string;
  root: string;
  env: NodeJS.ProcessEnv;
  logPath: string;
  stop(): Promise<void>;
}

export async function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export async function startBenchDaemon(options: { nodeArgs?: string[]; args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<BenchDaemon> {
  const dirs = daemonDirs();
  const env = { ...process.env, TOKEND_SOCKET: dirs.socket, TOKEND_CONFIG_DIR: dirs.configDir, TOKEND_STORE: 'memory', BROWSER: 'false', ...options.env };
  const logPath = join(dirs.root, 'daemon.log');
  const logFd = openSync(logPath, 'a');
  // BENCH_DAEMON_NODE_ARGS, e.g. `--cpu-prof --cpu-prof-dir=/tmp/profiles`: node refuses those in NODE_OPTIONS.
  const nodeArgs = [...(process.env.BENCH_DAEMON_NODE_ARGS?.split(' ').filter(Boolean) ?? []), ...(options.nodeArgs ?? [])];
  const child = spawn(process.execPath, [...nodeArgs, BIN, 'serve', '--socket', dirs.socket, ...(options.args ?? [])], {
    env,
    cwd: dirs.root,
    stdio: ['ignore', process.env.BENCH_DAEMON_STDOUT === undefined ? 'ignore' : openSync(process.env.BENCH_DAEMON_STDOUT, 'w'), logFd],
  });
  closeSync(logFd);
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await waitFor(() => readFileSync(logPath, 'utf8').includes('"event":"listening"') || child.exitCode !== null, 'the daemon to listen');
  if (child.exitCode !== null) throw new Error(`tokend serve exited: ${readFileSync(logPath, 'utf8')}`);
  return {
    child,
    socket: dirs.socket,
    root: dirs.root,
    env,
    logPath,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** `tokend login` against the stand-in, consent given over HTTP as a browser would. */
export async function login(daemon: BenchDaemon, standin: StandinHandle, scopes = 'bigquery,cloud-platform,devstorage.read_only', extra: string[] = []): Promise<void> {
  const cli = startCli(['login', '--client-secrets', standin.writeClientSecrets(daemon.root), '--scopes', scopes, ...extra], daemon.env);
  const [, authUrl] = await cli.waitForStderr(/^ {2}(http:\/\/127\.0\.0\.1:\d+\/auth\?\S+)$/m);
  await consentViaHttp(authUrl!);
  const result = await cli.result;
  if (result.code !== 0) throw new Error(`login failed: ${result.stderr}`);
}
