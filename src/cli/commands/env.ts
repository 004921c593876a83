import { TokendClient } from '../../client/socket-client.js';
import { loadConfig } from '../../config/config.js';
import { ExitCode, isTokendError, UsageError } from '../../errors.js';
import { shellQuote } from '../../fs/private-path.js';
import { parseFlags } from '../args.js';
import { socketOption } from '../context.js';
import { line, type Io } from '../io.js';
import type { ProjectNumberStatus } from '../../protocol.js';
import { clientEnvironment, projectNumberWarning, shadowingWarnings } from '../client-environment.js';

/** A shell's start-up must not hang on a stuck daemon. */
const DAEMON_TIMEOUT_MS = 2_000;

export const summary = 'print shell lines that point clients at the daemon';
export const usage = `Usage: tokend env [--shell sh|fish] [--json]

Prints the environment that points programs at this user's tokend, worked out the way the daemon
and every command work it out (flag, environment, config file, default): TOKEND_SOCKET, and
GCE_METADATA_HOST, GCE_METADATA_IP and GCE_METADATA_ROOT when the metadata listener is configured.
Warnings on stderr name what would make Google's clients ignore tokend; with the listener configured,
the daemon is asked (at most 2 s) whether it runs and knows the project number gcloud needs.

  eval "$(tokend env)"
  curl -s --unix-socket "$TOKEND_SOCKET" -H 'Metadata-Flavor: Google' \\
    http://localhost/computeMetadata/v1/instance/service-accounts/default/token

  --shell sh|fish  the syntax of the lines (default: sh, which bash and zsh read too)
  --json           print the variables as a JSON object
  --socket PATH    the daemon's socket`;

/** The daemon's own word on the project number (its environment may differ from this shell's). */
async function daemonWarnings(socketPath: string): Promise<string[]> {
  try {
    const status = (await new TokendClient({ socketPath, timeoutMs: DAEMON_TIMEOUT_MS }).status()) as { projectNumber?: ProjectNumberStatus };
    const warning = status.projectNumber === undefined ? undefined : projectNumberWarning(status.projectNumber);
    return warning === undefined ? [] : [warning];
  } catch (error) {
    const hint = isTokendError(error) ? error.hint : undefined;
    return [`${(error as Error).message}, so programs pointed at it get no tokens${hint === undefined ? '' : `: ${hint}`}`];
  }
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags('env', argv, { shell: { type: 'string' }, json: { type: 'boolean' }, ...socketOption });
  const shell = values.shell ?? 'sh';
  if (shell !== 'sh' && shell !== 'fish') {
    throw new UsageError(`unknown shell "${shell}"`, { hint: 'give --shell sh (bash, zsh and other POSIX shells) or --shell fish' });
  }
  const config = loadConfig(values.socket === undefined ? {} : { socket: values.socket }, io.env);
  const variables = clientEnvironment(config);
  const warnings = shadowingWarnings(io.env, config.settings.metadataPort);
  if (config.settings.metadataPort !== undefined) warnings.push(...(await daemonWarnings(config.settings.socket)));
  for (const warning of warnings) line(io.stderr, `warning: ${warning}`);
  if (values.json === true) {
    line(io.stdout, JSON.stringify(variables, null, 2));
  } else {
    for (const [name, value] of Object.entries(variables)) {
      line(io.stdout, shell === 'fish' ? `set -gx ${name} ${shellQuote(value)};` : `export ${name}=${shellQuote(value)};`);
    }
  }
  return ExitCode.ok;
}
