import { ExitCode, UsageError } from '../../errors.js';
import { parseFlags } from '../args.js';
import { clientFor, socketOption } from '../context.js';
import { line, type Io } from '../io.js';

export const summary = 'show or set the default account';
export const usage = `Usage: tokend default [EMAIL]

Without EMAIL, prints the default account: the one programs get tokens for when they name no
account. With EMAIL, makes that logged-in account the default.

  --socket PATH  the daemon's socket`;

interface StatusAccounts {
  accounts: Array<{ email: string; default: boolean }>;
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags('default', argv, { ...socketOption }, true);
  if (positionals.length > 1) throw new UsageError(`\`tokend default\` takes one email, not ${positionals.length} arguments`, { hint: 'see `tokend default --help`' });
  const client = clientFor(io, values.socket);
  const [email] = positionals;
  if (email === undefined) {
    const { accounts } = (await client.status()) as unknown as StatusAccounts;
    const current = accounts.find((account) => account.default);
    if (current !== undefined) {
      line(io.stdout, current.email);
      return ExitCode.ok;
    }
    line(io.stderr, accounts.length === 0 ? 'tokend: no account is logged in' : 'tokend: there is no default account');
    line(io.stderr, accounts.length === 0 ? 'hint: run `tokend login --client-secrets client_secrets.json`' : `hint: run \`tokend default ${accounts[0]!.email}\``);
    return ExitCode.notLoggedIn;
  }
  const changed = await client.setDefault(email);
  line(io.stdout, changed.previous === changed.email ? `${changed.email} is already the default account` : `${changed.email} is now the default account`);
  return ExitCode.ok;
}
