import { execFile } from 'node:child_process';
import { withoutSecrets } from '../config/config.js';

export interface CommandResult {
  /** The exit status; undefined when the program could not be started or was stopped at the time limit. */
  status: number | undefined;
  stdout: string;
  stderr: string;
  /** The program is not installed (ENOENT). */
  missing: boolean;
  timedOut: boolean;
}

export type RunCommand = (argv: readonly string[]) => Promise<CommandResult>;

const PROXY_VARIABLES = /^(https?|all|no)_proxy$/i;

/** The environment a service manager's command gets: the bus and runtime directory, no secret, no proxy URL. */
export function managerEnvironment(env: Readonly<Record<string, string | undefined>>): NodeJS.ProcessEnv {
  const copy: NodeJS.ProcessEnv = withoutSecrets(env);
  for (const name of Object.keys(copy)) if (PROXY_VARIABLES.test(name)) delete copy[name];
  return copy;
}

/** Runs a service manager's command, bounded in time; the environment is passed as it is (it names the bus). */
export function commandRunner(env: NodeJS.ProcessEnv, timeoutMs = 15_000): RunCommand {
  return (argv) =>
    new Promise((resolve) => {
      const [file, ...args] = argv;
      execFile(file ?? '', args, { env, timeout: timeoutMs, maxBuffer: 1 << 20, encoding: 'utf8' }, (error, stdout, stderr) => {
        const code = (error as (NodeJS.ErrnoException & { code?: unknown; killed?: boolean }) | null)?.code;
        resolve({
          status: error === null ? 0 : typeof code === 'number' ? code : undefined,
          stdout,
          stderr,
          missing: code === 'ENOENT',
          timedOut: error !== null && (error as { killed?: boolean }).killed === true && code !== 'ENOENT',
        });
      });
    });
}
