import { ExitCode } from '../../errors.js';
import { parseFlags } from '../args.js';
import { clientFor, socketOption } from '../context.js';
import { line, type Io } from '../io.js';

export const summary = 'revoke upstream and delete the stored refresh token';
export const usage = `Usage: tokend logout [--account EMAIL] [--no-revoke]

Revokes the account's grant at the OAuth server, then deletes its refresh token from the store.
If revocation fails, nothing is deleted.

  --account EMAIL  the account (default: the default account)
  --no-revoke      only delete the local copy (the grant stays valid upstream until revoked at
                   https://myaccount.google.com/permissions)
  --socket PATH    the daemon's socket`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags('logout', argv, {
    account: { type: 'string' },
    'no-revoke': { type: 'boolean' },
    ...socketOption,
  });
  const result = await clientFor(io, values.socket).logout({
    ...(values.account === undefined ? {} : { account: values.account }),
    revoke: values['no-revoke'] !== true,
  });
  line(io.stdout, `Logged out ${result.email}${result.revoked ? ' (grant revoked upstream)' : ' (local copy deleted; not revoked)'}`);
  return ExitCode.ok;
}
