import { loadConfig } from '../../config/config.js';
import { ExitCode, UsageError } from '../../errors.js';
import { shellQuote } from '../../fs/private-path.js';
import { parseFlags } from '../args.js';
import { socketOption } from '../context.js';
import { line, type Io } from '../io.js';
import { pointAtDaemon } from '../client-environment.js';

export const summary = 'print shell lines that point clients at the daemon';
export const usage = `Usage: tokend env [--shell sh|fish] [--json]

Prints the environment that points programs at this user's tokend: TOKEND_SOCKET (found as every
command finds it: flag, environment, config file, default), and GCE_METADATA_HOST, GCE_METADATA_IP
and GCE_METADATA_ROOT when there is a metadata listener. The running daemon is asked (at most 2 s)
where its listener is, so a daemon started with TOKEND_METADATA_PORT is found from any shell; when no
daemon answers, the configuration is used. Warnings on stderr name what would make Google's clients
ignore tokend: no daemon, no listener, a key file or gcloud login that takes precedence, gcloud's
cached "not on GCE", an unknown project number.

  eval "$(tokend env)"
  curl -s --unix-socket "$TOKEND_SOCKET" -H 'Metadata-Flavor: Google' \\
    http://localhost/computeMetadata/v1/instance/service-accounts/default/token

  --shell sh|fish  the syntax of the lines (default: sh, which bash and zsh read too)
  --json           print the variables as a JSON object
  --socket PATH    the daemon's socket`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags('env', argv, { shell: { type: 'string' }, json: { type: 'boolean' }, ...socketOption });
  const shell = values.shell ?? 'sh';
  if (shell !== 'sh' && shell !== 'fish') {
    throw new UsageError(`unknown shell "${shell}"`, { hint: 'give --shell sh (bash, zsh and other POSIX shells) or --shell fish' });
  }
  const config = loadConfig(values.socket === undefined ? {} : { socket: values.socket }, io.env);
  const { variables, warnings } = await pointAtDaemon(config, io.env);
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
