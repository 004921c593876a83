import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { loadConfig, withoutSecrets } from '../../config/config.js';
import { UsageError } from '../../errors.js';
import { parseFlags } from '../args.js';
import { pointAtDaemon } from '../client-environment.js';
import { socketOption } from '../context.js';
import { line, type Io } from '../io.js';

export const summary = 'run a command with the environment that points it at tokend';
export const usage = `Usage: tokend exec [--scopes LIST] [--account EMAIL] -- CMD [ARGS...]

Runs CMD with the variables \`tokend env\` prints (GCE_METADATA_HOST, GCE_METADATA_IP,
GCE_METADATA_ROOT when the metadata listener is configured, and TOKEND_SOCKET), plus TOKEND_SCOPES and
TOKEND_ACCOUNT for tools that know tokend. Signals are passed on to CMD; tokend exec exits with CMD's
status, or 128+N when CMD was killed by signal N.

  --scopes LIST    exported as TOKEND_SCOPES
  --account EMAIL  exported as TOKEND_ACCOUNT
  --socket PATH    the daemon's socket`;

/** Passed on to the command: what a terminal or a service manager sends to the process in front. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

export async function run(argv: string[], io: Io): Promise<number> {
  const separator = argv.indexOf('--');
  const own = separator === -1 ? argv : argv.slice(0, separator);
  const command = separator === -1 ? [] : argv.slice(separator + 1);
  const { values } = parseFlags('exec', own, { scopes: { type: 'string' }, account: { type: 'string' }, ...socketOption });
  if (command.length === 0) {
    throw new UsageError('no command to run', { hint: 'put it after --: `tokend exec --scopes bigquery -- bq ls`' });
  }
  const config = loadConfig(values.socket === undefined ? {} : { socket: values.socket }, io.env);
  const { variables, warnings } = await pointAtDaemon(config, io.env);
  for (const warning of warnings) line(io.stderr, `warning: ${warning}`);
  const env = {
    ...withoutSecrets(io.env),
    ...variables,
    ...(values.scopes === undefined ? {} : { TOKEND_SCOPES: values.scopes }),
    ...(values.account === undefined ? {} : { TOKEND_ACCOUNT: values.account }),
  };
  // Listening before the spawn: until then a signal would kill tokend and orphan the command. Node
  // runs signal listeners from the event loop, after spawn() has returned, so `child` is set by then.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of FORWARDED) process.on(signal, forward);
  const child = spawn(command[0]!, command.slice(1), { stdio: 'inherit', env });
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          new UsageError(`cannot run ${command[0]!} (${error.code ?? 'error'})`, {
            hint: error.code === 'ENOENT' ? `check that ${command[0]!} is installed and on the PATH` : 'check the command and its permissions',
          }),
        ),
      );
      child.once('exit', (code, signal) => resolve(signal === null ? (code ?? 1) : 128 + (constants.signals[signal] ?? 0)));
    });
  } finally {
    for (const signal of FORWARDED) process.removeListener(signal, forward);
  }
}
