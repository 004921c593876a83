import { ExitCode } from '../../errors.js';
import { parseFlags } from '../args.js';
import { clientFor, socketOption } from '../context.js';
import { line, type Io } from '../io.js';

export const summary = 'print an access token';
export const usage = `Usage: tokend token [--scopes LIST] [--account EMAIL] [--json]

Prints an access token for the account (default: the first logged in), limited to the scopes asked
for (default: every scope the account granted). Only the token goes to stdout.

  --scopes LIST    scopes, comma or space separated; short names expand (bigquery, cloud-platform)
  --account EMAIL  the account to use
  --json           print {access_token, expires_in, token_type, account, scopes}
  --socket PATH    the daemon's socket`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags('token', argv, {
    scopes: { type: 'string' },
    account: { type: 'string' },
    json: { type: 'boolean' },
    ...socketOption,
  });
  const token = await clientFor(io, values.socket).getToken({
    ...(values.scopes === undefined ? {} : { scopes: values.scopes }),
    ...(values.account === undefined ? {} : { account: values.account }),
  });
  line(io.stdout, values.json === true ? JSON.stringify(token) : token.access_token);
  return ExitCode.ok;
}
