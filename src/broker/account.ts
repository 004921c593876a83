import { StoreCorruptError } from '../errors.js';
import {
  clientFromStored,
  clientToStored,
  type ClientConfig,
  type StoredClientConfig,
} from '../oauth/client-config.js';
import { Secret } from '../secret.js';
import { SerialQueue } from './single-flight.js';
import { ScopeSet } from './scopes.js';

export type AccountHealth =
  | { state: 'ok' }
  | { state: 'consent_required'; reason: string; since: string };

/**
 * One logged-in Google account. Everything the daemon needs to refresh for it lives in one secret-store
 * record (the refresh token and the client it was issued to), so the store is the one source of truth.
 */
export class Account {
  /** Bumped whenever the refresh token is replaced or the account removed: results of older refreshes are dropped. */
  generation = 0;
  /** Upstream calls for one account run one at a time, so a rotated refresh token is never used stale. */
  readonly upstreamQueue = new SerialQueue();
  removed = false;
  /** Refresh tokens the OAuth server rotated in, and how many of them reached the store. */
  rotations = 0;
  storedRotations = 0;

  constructor(
    readonly email: string,
    public refreshToken: Secret,
    public granted: ScopeSet,
    public client: ClientConfig,
    public health: AccountHealth,
    readonly createdAt: string,
    public updatedAt: string,
    /** The client file the user logged in with, to write hints that can be pasted as they are. */
    public clientFile: string | undefined,
    /**
     * When the user made this the default account (the latest such account is the default); null when
     * never; undefined for a record written before defaults were explicit.
     */
    public defaultSince: string | null | undefined,
  ) {}

  /** A rotated refresh token lives in memory only: the tokens it brought are served once it is stored. */
  get unsaved(): boolean {
    return this.storedRotations < this.rotations;
  }

  /** What a caller gets without asking for scopes: the granted API scopes, as a VM answers with its own. */
  get defaultScopes(): ScopeSet {
    return this.granted.withoutIdentity();
  }
}

interface AccountRecordV1 {
  version: 1;
  email: string;
  refresh_token: string;
  scopes: string[];
  client: StoredClientConfig;
  health: AccountHealth;
  created_at: string;
  updated_at: string;
  client_file?: string;
  /** Absent in records written before defaults were explicit. */
  default_since?: string | null;
}

export function serializeAccount(account: Account): string {
  const record: AccountRecordV1 = {
    version: 1,
    email: account.email,
    refresh_token: account.refreshToken.reveal(),
    scopes: account.granted.spelled,
    client: clientToStored(account.client),
    health: account.health,
    created_at: account.createdAt,
    updated_at: account.updatedAt,
    ...(account.clientFile === undefined ? {} : { client_file: account.clientFile }),
    default_since: account.defaultSince ?? null,
  };
  return JSON.stringify(record);
}

/** Parses a stored record; a damaged one is reported by entry name, never by content. */
export function parseAccount(entryName: string, text: string): Account {
  const corrupt = (what: string) =>
    new StoreCorruptError(`the stored record for ${entryName} is damaged (${what})`, {
      hint: `run \`tokend logout --account ${entryName} --no-revoke\` and log in again`,
    });
  let record: Partial<AccountRecordV1>;
  try {
    record = JSON.parse(text) as Partial<AccountRecordV1>;
  } catch {
    throw corrupt('not JSON');
  }
  if (record.version !== 1) throw corrupt(`unknown version ${String(record.version)}`);
  if (typeof record.email !== 'string' || typeof record.refresh_token !== 'string' || record.refresh_token === '') {
    throw corrupt('no email or refresh token');
  }
  if (!Array.isArray(record.scopes) || !record.scopes.every((s) => typeof s === 'string')) {
    throw corrupt('no scopes');
  }
  if (typeof record.client !== 'object' || record.client === null) throw corrupt('no client');
  let client: ClientConfig;
  try {
    client = clientFromStored(record.client);
  } catch {
    throw corrupt('invalid client');
  }
  const health: AccountHealth =
    record.health?.state === 'consent_required' ? record.health : { state: 'ok' };
  const now = new Date(0).toISOString();
  return new Account(
    record.email,
    new Secret(record.refresh_token),
    ScopeSet.fromGranted(record.scopes.join(' ')),
    client,
    health,
    record.created_at ?? now,
    record.updated_at ?? now,
    typeof record.client_file === 'string' ? record.client_file : undefined,
    typeof record.default_since === 'string' ? record.default_since : 'default_since' in record ? null : undefined,
  );
}
