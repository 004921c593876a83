/**
 * The one interface every secret store implements. It is shaped like keytar's API so that adapters
 * are interchangeable and each can be tested alone. Every method is time-bounded by the adapter and
 * fails with a typed error from src/errors.ts (StoreUnavailableError, StoreTimeoutError,
 * StoreCorruptError), never with raw library text.
 */
export type StoreKind = 'keychain' | 'file' | 'memory';

export interface Credential {
  account: string;
  password: string;
}

export interface SecretStore {
  readonly kind: StoreKind;
  /** Human-readable: where the secrets live, e.g. "Secret Service (org.freedesktop.secrets)". */
  readonly description: string;
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  /** True when something was deleted. */
  deletePassword(service: string, account: string): Promise<boolean>;
  findCredentials(service: string): Promise<Credential[]>;
}

/** The keychain service name under which tokend keeps its records. Built here and only here. */
export const STORE_SERVICE = 'tokend';

/** The store entry that holds one account's record. Built here and only here. */
export function accountEntry(email: string): { service: string; account: string } {
  return { service: STORE_SERVICE, account: email.toLowerCase() };
}

/** What `--store` and TOKEND_STORE accept: a store, or `auto` (the keychain when usable, else a file). */
export type StoreSetting = 'auto' | 'keychain' | 'file' | 'memory';
export const STORE_SETTINGS: readonly StoreSetting[] = ['auto', 'keychain', 'file', 'memory'];
