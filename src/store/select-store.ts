import { join } from 'node:path';
import { ConfigError, StoreMismatchError, StoreUnavailableError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Secret } from '../secret.js';
import { FileStore, SECRETS_FILE_NAME } from './file-store.js';
import {
  DEFAULT_KEYCHAIN_TIMEOUT_MS,
  KeychainStore,
  keychainRemedy,
  type KeychainFailure,
  type ProbeResult,
} from './keychain-store.js';
import { MemoryStore } from './memory-store.js';
import { STORE_SERVICE, STORE_SETTINGS, type SecretStore, type StoreKind, type StoreSetting } from './secret-store.js';
import { readStoreMarker, recordingOnFirstWrite, type StoreMarker } from './store-marker.js';

/** What selection needs from a keychain store (tests inject a fake). */
export type KeychainCandidate = SecretStore & { probe(timeoutMs?: number): Promise<ProbeResult> };

/**
 * Chooses the secret store once, at start-up, and says why. Never a silent downgrade, and never a
 * silent switch: the marker (store-marker.ts) records which store holds the accounts, so `auto` does
 * not start over in a file when the keychain that holds them is merely unreachable today. A store
 * that holds no accounts is never a reason to stay with it.
 */

export interface SelectStoreOptions {
  setting: StoreSetting;
  /** Where the setting came from, for messages: `--store keychain`, `TOKEND_STORE=keychain`. */
  origin?: string;
  configDir: string;
  /** Encrypts the file store (TOKEND_FILE_PASSPHRASE). */
  passphrase?: string | Secret;
  logger: Logger;
  /** Bounds the keychain probe and every later keychain call. Default 5000 ms. */
  keychainTimeoutMs?: number;
  /** Default: a real KeychainStore. */
  createKeychain?: (timeoutMs: number) => KeychainCandidate;
  /** For the marker's `since`. Default: the system clock. */
  now?: () => number;
}

export interface StoreSelection {
  /** Records itself in the marker when the first account is saved in it. */
  store: SecretStore;
  kind: StoreKind;
  /** Why this store: for the daemon log, `login` and `status`. */
  reason: string;
  /**
   * Something the user should act on. selectStore itself logs (warn) only the `auto` fallback to a
   * file; the caller shows and logs this.
   */
  warning?: string;
}

export type StoreOpenOptions = Pick<SelectStoreOptions, 'configDir' | 'passphrase' | 'logger' | 'keychainTimeoutMs' | 'createKeychain'>;

export async function openFileStore(options: StoreOpenOptions): Promise<FileStore> {
  const store = new FileStore(options.configDir, {
    ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
    logger: options.logger,
  });
  await store.open();
  return store;
}

/** The keychain, and whether it is usable now (the probe is bounded by the keychain time limit). */
export async function probeKeychain(options: StoreOpenOptions): Promise<{ keychain: KeychainCandidate; probe: ProbeResult }> {
  const timeoutMs = options.keychainTimeoutMs ?? DEFAULT_KEYCHAIN_TIMEOUT_MS;
  const keychain = (options.createKeychain ?? ((ms: number) => new KeychainStore({ timeoutMs: ms })))(timeoutMs);
  return { keychain, probe: await keychain.probe(timeoutMs) };
}

export async function selectStore(options: SelectStoreOptions): Promise<StoreSelection> {
  const { setting, configDir, logger } = options;
  if (!STORE_SETTINGS.includes(setting)) {
    throw new ConfigError(`unknown store "${String(setting)}"`, { hint: 'use --store auto, keychain, file or memory' });
  }
  const origin = options.origin ?? `--store ${setting}`;
  const now = options.now ?? Date.now;
  const marker = await readStoreMarker(configDir);
  const recording = (store: SecretStore, kind: StoreMarker['kind']) =>
    recordingOnFirstWrite(store, { configDir, kind, recorded: marker?.kind === kind, now });
  const finish = (selection: StoreSelection, warnings: Array<string | undefined>): StoreSelection => {
    const warning = warnings.filter((w): w is string => w !== undefined).join(' ');
    if (warning === '') return selection;
    // Every warning is logged once, here, where it is made.
    logger.warn({ event: 'store_warning', store: selection.kind }, warning);
    return { ...selection, warning };
  };

  switch (setting) {
    case 'memory':
      return finish(
        { store: new MemoryStore(), kind: 'memory', reason: `chosen (${origin}): secrets are lost when the daemon stops` },
        [marker === undefined ? undefined : notVisible(marker.kind, 'memory', configDir)],
      );

    case 'keychain': {
      const { keychain, probe } = await probeKeychain(options);
      if (!probe.ok) {
        throw new StoreUnavailableError(`${origin} asks for the OS keychain, but it is not usable: ${probe.reason}`, {
          hint: `${keychainRemedy(process.platform, failureOf(probe))} and retry, or choose \`--store file\``,
          cause: probe.error,
        });
      }
      // A file store this daemon cannot open (another passphrase) may hold accounts: warn.
      const inFile = marker?.kind === 'file' ? await openFileStore(options).then(accountsIn).catch(() => 1) : 0;
      return finish(
        { store: recording(keychain, 'keychain'), kind: 'keychain', reason: `chosen (${origin}): ${keychain.description}` },
        [inFile > 0 ? notVisible('file', 'keychain', configDir) : undefined, await leftoverWarning(marker, options)],
      );
    }

    case 'file': {
      const store = await openFileStore(options);
      return finish(
        {
          store: recording(store, 'file'),
          kind: 'file',
          reason: `chosen (${origin}): secrets in ${store.path} (${store.encrypted ? 'encrypted' : 'not encrypted'})`,
        },
        [marker?.kind === 'keychain' ? notVisible('keychain', 'file', configDir) : undefined, store.encrypted ? undefined : unencryptedWarning(store)],
      );
    }

    case 'auto': {
      // Opened once (a passphrase costs a key derivation): read for the marker, reused by the fallback.
      let opened: FileStore | undefined;
      if (marker?.kind === 'file') {
        const store = (opened = await openFileStore(options));
        const held = await accountsIn(store);
        if (held > 0) {
          // The accounts are in the file store: using the keychain now would start over there. If
          // the keychain has become usable (it was missing at first start, say), one command moves them.
          const { probe } = await probeKeychain(options);
          return finish(
            {
              store: recording(store, 'file'),
              kind: 'file',
              // Said as of the start: status shows it for as long as the daemon runs.
              reason: `auto: the file store ${store.path} (${store.encrypted ? 'encrypted' : 'not encrypted'}) held your ${held === 1 ? 'account' : `${held} accounts`} at start`,
            },
            [
              store.encrypted ? undefined : unencryptedWarning(store),
              probe.ok
                ? `The OS keychain is usable now, but your accounts are in the file store ${store.path} (auto never moves them by itself). To move them, run \`tokend store migrate --to keychain\`.`
                : undefined,
            ],
          );
        }
        // An empty file store is no reason to stay: choose as on a first start.
      }
      const { keychain, probe } = await probeKeychain(options);
      if (probe.ok) {
        return finish(
          { store: recording(keychain, 'keychain'), kind: 'keychain', reason: `auto: the OS keychain is reachable (${keychain.description})` },
          [await leftoverWarning(marker, options)],
        );
      }
      if (marker?.kind === 'keychain') {
        throw new StoreMismatchError(`your accounts are in the OS keychain, which is unreachable now: ${probe.reason}`, {
          hint: `${keychainRemedy(process.platform, failureOf(probe))} and retry; or pass \`--store file\` explicitly to start a separate file store (your keychain accounts will not be visible there)`,
          cause: probe.error,
        });
      }
      const store = opened ?? (await openFileStore(options));
      const reason = `auto: the OS keychain is not usable (${probe.reason}), so secrets are in ${store.path} (${store.encrypted ? 'encrypted' : 'not encrypted'})`;
      const warning = `The OS keychain is not usable (${probe.reason}); secrets are kept in the file ${store.path}, ${
        store.encrypted
          ? 'encrypted with TOKEND_FILE_PASSPHRASE.'
          : 'NOT encrypted (protected by file permissions only); set TOKEND_FILE_PASSPHRASE to encrypt it.'
      } Once the keychain works, \`tokend store migrate --to keychain\` moves them there.`;
      // A fallback is the one choice the user did not make: say so loudly, here as well.
      logger.warn(
        { event: 'store_fallback', store: 'file', file: store.path, encrypted: store.encrypted, keychain_error: probe.ok ? undefined : probe.error.details?.libraryError },
        warning,
      );
      return { store: recording(store, 'file'), kind: 'file', reason, warning };
    }
  }
}

async function accountsIn(store: SecretStore): Promise<number> {
  return (await store.findCredentials(STORE_SERVICE)).length;
}

/** After a move to the keychain that stopped before its last step, the file still holds copies. */
async function leftoverWarning(marker: StoreMarker | undefined, options: StoreOpenOptions): Promise<string | undefined> {
  if (marker?.kind !== 'keychain') return undefined;
  const store = await openFileStore(options).catch(() => undefined);
  const left = store === undefined ? 0 : await accountsIn(store).catch(() => 0);
  if (store === undefined || left === 0) return undefined;
  return `The file store ${store.path} still holds ${left === 1 ? 'an account record' : `${left} account records`} (a move to the keychain that did not finish): run \`tokend store migrate --to keychain\` to delete the copies the keychain also holds.`;
}

function notVisible(holder: StoreMarker['kind'], chosen: StoreKind, configDir: string): string {
  const where = holder === 'keychain' ? 'the OS keychain' : `the file store (${join(configDir, SECRETS_FILE_NAME)})`;
  const back = holder === 'keychain' ? '`--store keychain`' : '`--store file`';
  const recorded = chosen === 'memory' ? '' : ` Once an account is saved here, ${chosen === 'keychain' ? 'the OS keychain' : 'the file store'} is recorded as the store that holds your accounts.`;
  return `Your accounts were in ${where}; they are not visible in the ${chosen} store. Use ${back} to reach them.${recorded}`;
}

function unencryptedWarning(store: FileStore): string {
  return `Secrets are stored in ${store.path} without encryption (protected by file permissions only); set TOKEND_FILE_PASSPHRASE to encrypt it.`;
}

export function failureOf(probe: ProbeResult): KeychainFailure {
  const kind = probe.ok ? undefined : probe.error.details?.keychainFailure;
  return typeof kind === 'string' ? (kind as KeychainFailure) : 'unreachable';
}
