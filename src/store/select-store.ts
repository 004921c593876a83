import { join } from 'node:path';
import {
  ConfigError,
  StoreCorruptError,
  StoreMismatchError,
  StoreUnavailableError,
} from '../errors.js';
import type { Logger } from '../log.js';
import type { Secret } from '../secret.js';
import { ensurePrivateDir, readPrivateFile, shellQuote, writeFileAtomic } from '../fs/private-path.js';
import { FileStore, SECRETS_FILE_NAME } from './file-store.js';
import {
  DEFAULT_KEYCHAIN_TIMEOUT_MS,
  KeychainStore,
  keychainRemedy,
  type KeychainFailure,
  type ProbeResult,
} from './keychain-store.js';
import { MemoryStore } from './memory-store.js';
import type { SecretStore, StoreKind } from './secret-store.js';

/**
 * Chooses the secret store once, at start-up, and says why. Never a silent downgrade, and never a
 * silent switch: `<configDir>/store.json` records which store holds the accounts, so `auto` does not
 * start over in a file when the keychain that holds them is merely unreachable today.
 */

export type StoreSetting = 'auto' | 'keychain' | 'file' | 'memory';
export const STORE_SETTINGS: readonly StoreSetting[] = ['auto', 'keychain', 'file', 'memory'];
export const STORE_MARKER_FILE = 'store.json';

/** The persistent store that holds the accounts; memory never gets a marker. */
export interface StoreMarker {
  kind: 'keychain' | 'file';
  /** ISO time the marker was written. */
  since: string;
}

/** What selection needs from a keychain store (tests inject a fake). */
export type KeychainCandidate = SecretStore & { probe(timeoutMs?: number): Promise<ProbeResult> };

export interface SelectStoreOptions {
  setting: StoreSetting;
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

export async function selectStore(options: SelectStoreOptions): Promise<StoreSelection> {
  const { setting, configDir, logger } = options;
  if (!STORE_SETTINGS.includes(setting)) {
    throw new ConfigError(`unknown store "${String(setting)}"`, { hint: 'use --store auto, keychain, file or memory' });
  }
  const timeoutMs = options.keychainTimeoutMs ?? DEFAULT_KEYCHAIN_TIMEOUT_MS;
  const createKeychain = options.createKeychain ?? ((ms: number) => new KeychainStore({ timeoutMs: ms }));
  const now = options.now ?? Date.now;
  const marker = await readStoreMarker(configDir);
  const markerPath = join(configDir, STORE_MARKER_FILE);

  const openFile = async (): Promise<FileStore> => {
    const store = new FileStore(configDir, {
      ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
      logger,
    });
    await store.open();
    return store;
  };
  const record = async (kind: StoreMarker['kind']): Promise<void> => {
    if (marker?.kind === kind) return;
    const dir = await ensurePrivateDir(configDir, { create: true, others: 'tighten', what: 'configuration' });
    const next: StoreMarker = { kind, since: new Date(now()).toISOString() };
    await writeFileAtomic(dir, STORE_MARKER_FILE, `${JSON.stringify(next)}\n`);
  };
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
        {
          store: new MemoryStore(),
          kind: 'memory',
          reason: 'chosen (--store memory): secrets are lost when the daemon stops',
        },
        [marker === undefined ? undefined : notVisible(marker.kind, 'memory', configDir)],
      );

    case 'keychain': {
      const keychain = createKeychain(timeoutMs);
      const probe = await keychain.probe(timeoutMs);
      if (!probe.ok) {
        throw new StoreUnavailableError(`--store keychain was chosen, but the OS keychain is not usable: ${probe.reason}`, {
          hint: `${keychainRemedy(process.platform, failureOf(probe))} and retry, or choose \`--store file\``,
          cause: probe.error,
        });
      }
      await record('keychain');
      return finish(
        { store: keychain, kind: 'keychain', reason: `chosen (--store keychain): ${keychain.description}` },
        [marker?.kind === 'file' ? notVisible('file', 'keychain', configDir) : undefined],
      );
    }

    case 'file': {
      const store = await openFile();
      await record('file');
      return finish(
        {
          store,
          kind: 'file',
          reason: `chosen (--store file): secrets in ${store.path} (${store.encrypted ? 'encrypted' : 'not encrypted'})`,
        },
        [
          marker?.kind === 'keychain' ? notVisible('keychain', 'file', configDir) : undefined,
          store.encrypted ? undefined : unencryptedWarning(store),
        ],
      );
    }

    case 'auto': {
      if (marker?.kind === 'file') {
        // The accounts are in the file store: using the keychain now would start over there. But if
        // the keychain has become usable (it was locked at first start, say), the user should know.
        const store = await openFile();
        const keychainNow = await createKeychain(timeoutMs).probe(timeoutMs);
        return finish(
          {
            store,
            kind: 'file',
            reason: `auto: your accounts are in the file store ${store.path} (${store.encrypted ? 'encrypted' : 'not encrypted'}), as recorded in ${markerPath}`,
          },
          [
            store.encrypted ? undefined : unencryptedWarning(store),
            keychainNow.ok
              ? `The OS keychain is usable now, but your accounts stay in the file store ${store.path} (auto never moves them). To keep them in the keychain instead: run \`tokend serve --store keychain\`, log in again, then delete ${store.path}.`
              : undefined,
          ],
        );
      }
      const keychain = createKeychain(timeoutMs);
      const probe = await keychain.probe(timeoutMs);
      if (probe.ok) {
        await record('keychain');
        return { store: keychain, kind: 'keychain', reason: `auto: the OS keychain is reachable (${keychain.description})` };
      }
      if (marker?.kind === 'keychain') {
        throw new StoreMismatchError(
          `your accounts are in the OS keychain, which is unreachable now: ${probe.reason}`,
          {
            hint: `${keychainRemedy(process.platform, failureOf(probe))} and retry; or pass \`--store file\` explicitly to start a separate file store (your keychain accounts will not be visible there)`,
            cause: probe.error,
          },
        );
      }
      const store = await openFile();
      await record('file');
      const reason = `auto: the OS keychain is not usable, so secrets are in ${store.path} (${store.encrypted ? 'encrypted' : 'not encrypted'})`;
      const warning = `The OS keychain is not usable (${probe.reason}); secrets are kept in the file ${store.path}, ${
        store.encrypted
          ? 'encrypted with TOKEND_FILE_PASSPHRASE.'
          : 'NOT encrypted (protected by file permissions only); set TOKEND_FILE_PASSPHRASE to encrypt it.'
      }`;
      // A fallback is the one choice the user did not make: say so loudly, here as well.
      logger.warn({ event: 'store_fallback', store: 'file', file: store.path, encrypted: store.encrypted }, warning);
      return { store, kind: 'file', reason, warning };
    }
  }
}

/** The marker in `configDir`, or undefined when there is none. */
export async function readStoreMarker(configDir: string): Promise<StoreMarker | undefined> {
  const path = join(configDir, STORE_MARKER_FILE);
  // Owner and mode are checked like every file tokend reads: the marker decides where secrets go.
  const raw = await readPrivateFile(path, { kind: 'config' });
  if (raw === undefined) return undefined;
  const text = raw.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const candidate = value as Partial<StoreMarker> | undefined;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    (candidate.kind !== 'keychain' && candidate.kind !== 'file') ||
    typeof candidate.since !== 'string'
  ) {
    throw new StoreCorruptError(`${path}, which records the store that holds your accounts, is damaged`, {
      hint: `remove it (rm ${shellQuote(path)}) and start with an explicit \`--store keychain\` or \`--store file\``,
    });
  }
  return { kind: candidate.kind, since: candidate.since };
}

function notVisible(holder: StoreMarker['kind'], chosen: StoreKind, configDir: string): string {
  const where = holder === 'keychain' ? 'the OS keychain' : `the file store (${join(configDir, SECRETS_FILE_NAME)})`;
  const back = holder === 'keychain' ? '`--store keychain`' : '`--store file`';
  const recorded = chosen === 'memory' ? '' : ` From now on ${chosen === 'keychain' ? 'the OS keychain' : 'the file store'} is recorded as the store that holds your accounts.`;
  return `Your accounts were in ${where}; they are not visible in the ${chosen} store. Use ${back} to reach them.${recorded}`;
}

function unencryptedWarning(store: FileStore): string {
  return `Secrets are stored in ${store.path} without encryption (protected by file permissions only); set TOKEND_FILE_PASSPHRASE to encrypt it.`;
}

function failureOf(probe: ProbeResult): KeychainFailure {
  const kind = probe.ok ? undefined : probe.error.details?.keychainFailure;
  return typeof kind === 'string' ? (kind as KeychainFailure) : 'unreachable';
}
