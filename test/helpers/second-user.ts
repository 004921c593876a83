/**
 * A real second local user for attack tests: the suites run as root (as CI does) and act as `nobody`
 * through setpriv, so the kernel sees a different uid exactly as it would for another person's shell.
 */
import { spawn } from 'node:child_process';
import { which } from './requirements.js';

export const OTHER_UID = 65534;
export const OTHER_GID = 65534;

/** `false` when a second user can be acted as; else the skip reason (under CI=true: throws). */
export function skipUnlessSecondUser(): string | false {
  const problem =
    process.getuid?.() !== 0
      ? 'needs to run as root to act as a second user (setpriv)'
      : which('setpriv') === undefined
        ? 'needs setpriv: apt-get install util-linux'
        : undefined;
  if (problem === undefined) return false;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${problem}`);
  return problem;
}

export interface OtherUserResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function spawnAsOtherUser(source: string, args: string[]) {
  return spawn(
    'setpriv',
    [`--reuid=${OTHER_UID}`, `--regid=${OTHER_GID}`, '--clear-groups', '--', process.execPath, '--input-type=module', '-e', source, '--', ...args],
    { cwd: '/', env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

/**
 * Runs an ES module's source as the other user, in `/`, with an environment that carries nothing of
 * the owner's. `args` reach the script as process.argv[1...]. Resolves when it exits (bounded).
 */
export async function runAsOtherUser(source: string, args: string[] = [], timeoutMs = 20_000): Promise<OtherUserResult> {
  const script = startAsOtherUser(source, args);
  const timer = setTimeout(() => void script.stop(), timeoutMs);
  const code = await script.exited;
  clearTimeout(timer);
  if (code === null) throw new Error(`the second user's script did not finish within ${timeoutMs} ms\nstderr: ${script.stderr()}`);
  return { code, stdout: script.stdout(), stderr: script.stderr() };
}

/** Starts a long-running script as the other user; `stop()` kills it. */
export function startAsOtherUser(source: string, args: string[] = []) {
  const child = spawnAsOtherUser(source, args);
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    for (const waiter of waiters) waiter();
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return {
    child,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
    /** Resolves with the first match of `pattern` in what the script printed. */
    waitFor(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the second user's script never printed ${pattern}\nstdout: ${stdout}\nstderr: ${stderr}`));
        }, timeoutMs);
        const check = () => {
          const match = stdout.match(pattern);
          if (match === null) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(match);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(): Promise<void> {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
