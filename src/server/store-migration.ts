import type { AccountRegistry } from '../broker/accounts.js';
import { BadRequestError, StoreUnavailableError } from '../errors.js';
import type { Logger } from '../log.js';
import type { StoreInfo, StoreMoved } from '../protocol.js';
import type { FileStore } from '../store/file-store.js';
import { keychainRemedy } from '../store/keychain-store.js';
import type { SecretStore } from '../store/secret-store.js';
import { openFileStore, probeKeychain, type StoreOpenOptions } from '../store/select-store.js';
import { writeStoreMarker } from '../store/store-marker.js';

export type PersistentStore = 'keychain' | 'file';

export interface StoreMigrationDeps {
  accounts: AccountRegistry;
  open: StoreOpenOptions;
  logger: Logger;
  /** The store the daemon uses now, as status and login show it; updated after a move. */
  info: { store: StoreInfo };
  now: () => number;
}

/**
 * `tokend store migrate --to keychain|file`: moves every account to the other store without a
 * restart (AccountRegistry.moveTo: copy, verify, record, then delete). Run again after a move that
 * was interrupted, it deletes the copies the old store still holds once they match.
 */
export function migrateStore(deps: StoreMigrationDeps, to: PersistentStore): Promise<StoreMoved> {
  return deps.accounts.migration(() => migrateNow(deps, to));
}

async function migrateNow(deps: StoreMigrationDeps, to: PersistentStore): Promise<StoreMoved> {
  const current = deps.accounts.secretStore;
  if (current.kind === 'memory') {
    throw new BadRequestError('the daemon runs with --store memory: there is nothing to move', { hint: 'restart it with `tokend serve --store auto`' });
  }
  const target = await openTarget(deps.open, to);
  const from = current.kind;
  if (from === to) {
    const other = await openTarget(deps.open, to === 'keychain' ? 'file' : 'keychain').catch(() => undefined);
    const cleaned = other === undefined ? { deleted: [], differing: [] } : await deps.accounts.deleteCopiesIn(other);
    deps.logger.info({ event: 'store_leftovers_deleted', store: to, deleted: cleaned.deleted.length, differing: cleaned.differing.length }, 'left-over copies deleted');
    return { from, to, moved: [], leftovers: cleaned.differing, cleaned: cleaned.deleted, store: deps.info.store };
  }
  const result = await deps.accounts.moveTo(target, () => writeStoreMarker(deps.open.configDir, to, deps.now()));
  const store: StoreInfo = {
    kind: to,
    description: target.description,
    reason: `moved here from the ${from === 'file' ? 'file store' : 'OS keychain'} by \`tokend store migrate --to ${to}\``,
    ...(to === 'file' && !(target as FileStore).encrypted
      ? { warning: `Secrets are stored in ${(target as FileStore).path} without encryption (protected by file permissions only); set TOKEND_FILE_PASSPHRASE to encrypt it.` }
      : {}),
  };
  deps.info.store = store;
  deps.logger.info(
    { event: 'store_moved', from, to, accounts: result.moved.length, leftovers: result.leftovers.length },
    `accounts moved to ${target.description}`,
  );
  return { from, to, moved: result.moved, leftovers: result.leftovers, cleaned: [], store };
}

async function openTarget(options: StoreOpenOptions, kind: PersistentStore): Promise<SecretStore> {
  if (kind === 'file') return openFileStore(options);
  const { keychain, probe } = await probeKeychain(options);
  if (!probe.ok) {
    const failure = probe.error.details?.keychainFailure;
    throw new StoreUnavailableError(`the OS keychain is not usable: ${probe.reason}; nothing was moved`, {
      hint: `${keychainRemedy(process.platform, typeof failure === 'string' ? (failure as Parameters<typeof keychainRemedy>[1]) : 'unreachable')} and run \`tokend store migrate --to keychain\` again`,
      cause: probe.error,
    });
  }
  return keychain;
}
