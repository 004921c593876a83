import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { appendFileSync, createWriteStream, mkdirSync, mkdtempSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { obtainRedirectUrl, type ConsentOptions } from './consent-driver.js';

const ROOT = new URL('../../', import.meta.url).pathname;
export const BIN = join(ROOT, 'bin', 'tokend.js');
const READY_TIMEOUT_MS = 10_000;

/**
 * Where the daemon logs of every suite go, so that the final suite can search them for leaked
 * secrets (test/final/no-secrets-in-logs.test.ts).
 */
export function artifactLogPath(name: string, kind: 'logs' | 'outputs' = 'logs'): string {
  const base = process.env.TOKEND_TEST_ARTIFACTS ?? mkdtempSync(join(tmpdir(), 'tokend-artifacts-'));
  const dir = join(base, kind);
  mkdirSync(dir, { recursive: true });
  // A name may come from a command line the fuzzer made up: nothing in it may leave the directory.
  return join(dir, `${name.replace(/[^\w.-]/g, '_').slice(0, 60)}-${process.pid}-${Date.now()}.log`);
}

/**
 * Secrets tokend itself holds that no stand-in sees (the file passphrase), recorded for the final
 * suite like the stand-in's; a no-op outside `npm test`.
 */
function recordSecret(value: string | undefined): void {
  const base = process.env.TOKEND_TEST_ARTIFACTS;
  if (base === undefined || value === undefined || value === '') return;
  const dir = join(base, 'secrets');
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, `tokend-held-${process.pid}.txt`), `${value}\n`);
}

/** A private directory for one daemon: its socket, config dir and home. */
export function daemonDirs(): { root: string; socket: string; configDir: string } {
  const root = mkdtempSync(join(tmpdir(), 'tokend-e2e-'));
  return { root, socket: join(root, 'run', 'tokend.sock'), configDir: join(root, 'config') };
}

/** The environment of a daemon and of the CLIs that talk to it, kept to `dirs`. */
export function daemonEnv(dirs: { socket: string; configDir: string }, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, TOKEND_SOCKET: dirs.socket, TOKEND_CONFIG_DIR: dirs.configDir, ...extra };
}

/** A loopback TCP port free a moment ago, for a daemon's metadata listener. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI to completion. `input` is written to its stdin. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, input?: string, timeoutMs = 20_000): Promise<CliResult> {
  const cli = startCli(args, env, timeoutMs);
  cli.child.stdin?.end(input);
  return cli.result;
}

export interface DaemonProcess {
  child: ChildProcess;
  socket: string;
  logPath: string;
  /** Everything the daemon wrote to stderr so far. */
  log(): string;
  /** SIGTERM, then the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Every daemon a test file started and that still runs: stopAllDaemons() ends them, whatever failed. */
const running = new Set<DaemonProcess>();

/** For `after()`: a test that failed half-way must not leave a daemon holding the file open. */
export async function stopAllDaemons(): Promise<void> {
  await Promise.all([...running].map((daemon) => daemon.stop()));
}

/**
 * Starts `tokend serve` as a real process and waits (bounded) until its socket accepts connections.
 * Its stderr is kept in memory and in the artifacts log.
 */
export async function startDaemonProcess(options: {
  name: string;
  env: NodeJS.ProcessEnv;
  socket: string;
  args?: string[];
}): Promise<DaemonProcess> {
  const logPath = artifactLogPath(options.name);
  const logFile: WriteStream = createWriteStream(logPath);
  recordSecret(options.env.TOKEND_FILE_PASSPHRASE);
  const child = spawn(process.execPath, [BIN, 'serve', '--socket', options.socket, ...(options.args ?? [])], {
    env: options.env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  let onLog = () => {};
  child.stderr?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
    logFile.write(chunk);
    onLog();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (code) => {
      logFile.end();
      resolve(code);
    });
  });
  // Ready when the daemon logs that it listens (in JSON or --log-format pretty); it logs that only after the socket is bound.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tokend serve did not listen within ${READY_TIMEOUT_MS} ms:\n${log}`));
    }, READY_TIMEOUT_MS);
    onLog = () => {
      if (log.includes('"event":"listening"') || log.includes(' event=listening')) {
        clearTimeout(timer);
        onLog = () => {};
        resolve();
      }
    };
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`tokend serve exited with ${code} before listening:\n${log}`));
    });
  });
  const daemon: DaemonProcess = {
    child,
    socket: options.socket,
    logPath,
    log: () => log,
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  running.add(daemon);
  void exited.then(() => running.delete(daemon));
  return daemon;
}

export interface RunningCli {
  child: ChildProcess;
  /** Resolves with the first match of `pattern` in stderr (as it arrives). */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  writeStdin(text: string): void;
  result: Promise<CliResult>;
}

/** Starts the real CLI and lets the test react to what it prints (the login URL, say). */
export function startCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  recordSecret(env.TOKEND_FILE_PASSPHRASE);
  // What the CLI tells a person (stderr) is searched for secrets too, and so is what it prints (status,
  // doctor, env, a child's output under exec): those of `token` and `exec` may carry access tokens by design.
  const stderrLog = createWriteStream(artifactLogPath(`cli-${args[0] ?? 'none'}`));
  const stdoutLog = createWriteStream(artifactLogPath(`cli-${args[0] ?? 'none'}`, 'outputs'));
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout?.on('data', (chunk: Buffer) => {
    stdoutLog.write(chunk);
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderrLog.write(chunk);
    stderr += chunk.toString();
    for (const watcher of watchers) watcher();
  });
  const result = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tokend ${args.join(' ')} did not finish within ${timeoutMs} ms\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      stderrLog.end();
      stdoutLog.end();
      for (const watcher of watchers) watcher();
      resolve({ code, stdout, stderr });
    });
  });
  return {
    child,
    result,
    writeStdin: (text) => child.stdin?.write(text),
    waitForStderr: (pattern, waitMs = 10_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`stderr never matched ${pattern}:\n${stderr}`));
        }, waitMs);
        const check = () => {
          const match = stderr.match(pattern);
          if (match !== null) {
            clearTimeout(timer);
            watchers.delete(check);
            resolve(match);
          } else if (child.exitCode !== null) {
            clearTimeout(timer);
            watchers.delete(check);
            reject(new Error(`the CLI exited (${child.exitCode}) before stderr matched ${pattern}:\n${stderr}`));
          }
        };
        watchers.add(check);
        check();
      }),
  };
}

/** The authorization URL as `tokend login` prints it: indented, alone on its line. */
export const AUTH_URL_LINE = /^ {2}(http:\/\/127\.0\.0\.1:\d+\/auth\?\S+)$/m;

/**
 * `tokend login --no-browser ARGS`, consenting over HTTP and pasting the redirect back as a user over
 * SSH does. Resolves with the finished command.
 */
export async function loginByPasteBack(args: string[], env: NodeJS.ProcessEnv, consent: ConsentOptions = {}): Promise<CliResult> {
  const login = startCli(['login', ...args, '--no-browser'], env);
  const [, authUrl] = await login.waitForStderr(AUTH_URL_LINE);
  login.writeStdin(`${await obtainRedirectUrl(authUrl!, consent)}\n`);
  return login.result;
}
