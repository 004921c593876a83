import { join } from 'node:path';
import { StoreCorruptError } from '../errors.js';
import { ensurePrivateDir, readPrivateFile, shellQuote, writeFileAtomic } from '../fs/private-path.js';
import type { Credential, SecretStore } from './secret-store.js';

/**
 * `<configDir>/store.json` records which store holds the accounts, so that `auto` does not start over
 * in a file when the keychain that holds them is merely unreachable today. It is written when an
 * account is first saved in a store, never before: an empty store holds nothing worth sticking to.
 */
export const STORE_MARKER_FILE = 'store.json';

/** The persistent store that holds the accounts; memory never gets a marker. */
export interface StoreMarker {
  kind: 'keychain' | 'file';
  /** ISO time the marker was written. */
  since: string;
}

/** The marker in `configDir`, or undefined when there is none. */
export async function readStoreMarker(configDir: string): Promise<StoreMarker | undefined> {
  const path = join(configDir, STORE_MARKER_FILE);
  // Owner and mode are checked like every file tokend reads: the marker decides where secrets go.
  const raw = await readPrivateFile(path, { kind: 'config' });
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
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

export async function writeStoreMarker(configDir: string, kind: StoreMarker['kind'], now: number): Promise<void> {
  const dir = await ensurePrivateDir(configDir, { create: true, others: 'tighten', what: 'configuration' });
  const marker: StoreMarker = { kind, since: new Date(now).toISOString() };
  await writeFileAtomic(dir, STORE_MARKER_FILE, `${JSON.stringify(marker)}\n`);
}

/**
 * `inner`, recording itself in the marker before its first write: from the first saved account on,
 * `auto` sticks to this store. Marker first, so a crash between the two leaves a marker naming an
 * empty store (which counts for nothing), never an account in a store the marker does not name.
 */
export function recordingOnFirstWrite(
  inner: SecretStore,
  record: { configDir: string; kind: StoreMarker['kind']; recorded: boolean; now: () => number },
): SecretStore {
  let recorded = record.recorded;
  return {
    kind: inner.kind,
    description: inner.description,
    getPassword: (service: string, account: string) => inner.getPassword(service, account),
    deletePassword: (service: string, account: string) => inner.deletePassword(service, account),
    findCredentials: (service: string): Promise<Credential[]> => inner.findCredentials(service),
    async setPassword(service: string, account: string, password: string): Promise<void> {
      if (!recorded) {
        await writeStoreMarker(record.configDir, record.kind, record.now());
        recorded = true;
      }
      await inner.setPassword(service, account, password);
    },
  };
}
