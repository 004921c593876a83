import { ExitCode, UsageError } from '../../errors.js';
import { parseFlags } from '../args.js';
import { clientFor, socketOption } from '../context.js';
import { line, type Io } from '../io.js';

export const summary = 'move your accounts between the OS keychain and the file store';
export const usage = `Usage: tokend store migrate --to keychain|file [--json]

Moves every account the daemon holds to the other store, without a restart and without signing in
again: each record is copied, read back and compared, the new store is recorded as the one that
holds your accounts, and only then is the old copy deleted. If anything fails before that, nothing
is deleted. Run it again after a move that was interrupted: it deletes the old copies that match.

  --to keychain|file  where the accounts go
  --json              print the result as JSON
  --socket PATH       the daemon's socket`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags('store', argv, { to: { type: 'string' }, json: { type: 'boolean' }, ...socketOption }, true);
  if (positionals[0] !== 'migrate' || positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? '`tokend store` needs a subcommand' : `unknown subcommand "${positionals.join(' ')}"`, {
      hint: 'run `tokend store migrate --to keychain` (or `--to file`)',
    });
  }
  const to = values.to;
  if (to !== 'keychain' && to !== 'file') {
    throw new UsageError(to === undefined ? '--to is required' : `cannot move the accounts to "${to}"`, {
      hint: 'run `tokend store migrate --to keychain` (or `--to file`)',
    });
  }
  const result = await clientFor(io, values.socket).migrateStore(to);
  if (values.json === true) {
    line(io.stdout, JSON.stringify(result, null, 2));
  } else if (result.from === result.to) {
    line(io.stdout, `Your accounts are already in ${result.store.description}.`);
    if (result.cleaned.length > 0) line(io.stdout, `Deleted the copies left in the ${result.to === 'keychain' ? 'file store' : 'OS keychain'}: ${result.cleaned.join(', ')}.`);
  } else {
    const count = result.moved.length === 1 ? '1 account' : `${result.moved.length} accounts`;
    line(io.stdout, `Moved ${count}${result.moved.length > 0 ? ` (${result.moved.join(', ')})` : ''} to ${result.store.description}.`);
    line(io.stdout, `Each was read back and compared before the ${result.from === 'file' ? 'file store copy' : 'keychain copy'} was deleted.`);
  }
  if (result.store.warning !== undefined) line(io.stderr, `warning: ${result.store.warning}`);
  if (result.leftovers.length === 0) return ExitCode.ok;
  line(io.stderr, `tokend: the old store still holds ${result.leftovers.join(', ')}`);
  line(io.stderr, `hint: run \`tokend store migrate --to ${result.to}\` again to delete the copies that match`);
  return ExitCode.store;
}
