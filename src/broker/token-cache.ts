import type { Secret } from '../secret.js';
import type { ScopeSet } from './scopes.js';

export interface CachedToken {
  readonly accountEmail: string;
  readonly scopes: ScopeSet;
  readonly accessToken: Secret;
  readonly obtainedAt: number;
  readonly expiresAt: number;
  lastUsedAt: number;
  /** The account's rotation that brought this token, to be stored before it is served; 0 for none. */
  readonly rotation: number;
  /** Requests served with this entry (or its predecessors for the same key). */
  uses: number;
}

/**
 * The key last made for each scope set (sets are immutable, and parsed lists are remembered): a cache
 * hit then looks up a string V8 has hashed before, where a new one would be hashed and compared whole.
 */
const lastKeys = new WeakMap<ScopeSet, { accountEmail: string; key: string }>();

export function cacheKey(accountEmail: string, scopes: ScopeSet): string {
  const last = lastKeys.get(scopes);
  if (last?.accountEmail === accountEmail) return last.key;
  const key = `${accountEmail}\n${scopes.key}`;
  lastKeys.set(scopes, { accountEmail, key });
  return key;
}

export function remainingSeconds(token: CachedToken, now: number): number {
  return Math.floor((token.expiresAt - now) / 1000);
}

/**
 * Access tokens by (account, scope set). Bounded twice: beyond `maxPerAccount` entries of one account,
 * or `maxEntries` in all, the least recently used entry is dropped (and `onEvict` told, so nothing
 * keeps it fresh): a caller cycling through scope combinations cannot grow the daemon, nor keep it
 * refreshing sets nobody uses.
 */
export class TokenCache {
  private readonly entries = new Map<string, CachedToken>();

  constructor(
    private readonly maxEntries = 256,
    private readonly maxPerAccount = 32,
    private readonly onEvict: (key: string) => void = () => undefined,
  ) {}

  get(key: string): CachedToken | undefined {
    return this.entries.get(key);
  }

  /** Stores `token` unless the entry already holds one that lives longer (a late, stale result). */
  set(key: string, token: CachedToken): CachedToken {
    const current = this.entries.get(key);
    if (current !== undefined && current.expiresAt > token.expiresAt) return current;
    if (current !== undefined) {
      token.lastUsedAt = Math.max(token.lastUsedAt, current.lastUsedAt);
      token.uses += current.uses;
    }
    this.entries.set(key, token);
    if (current === undefined && this.forAccount(token.accountEmail).length > this.maxPerAccount) {
      this.evictLeastRecentlyUsed(token.accountEmail);
    }
    if (this.entries.size > this.maxEntries) this.evictLeastRecentlyUsed();
    return token;
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  deleteAccount(accountEmail: string): void {
    for (const [key, token] of this.entries) {
      if (token.accountEmail === accountEmail) this.entries.delete(key);
    }
  }

  deleteExpired(now: number): void {
    for (const [key, token] of this.entries) {
      if (token.expiresAt <= now) this.entries.delete(key);
    }
  }

  forAccount(accountEmail: string): CachedToken[] {
    return [...this.entries.values()].filter((token) => token.accountEmail === accountEmail);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Sets asked for once go first (what a caller cycling through sets leaves), then the least recently used. */
  private evictLeastRecentlyUsed(accountEmail?: string): void {
    let oldestKey: string | undefined;
    let oldest: CachedToken | undefined;
    const rank = (token: CachedToken) => (token.uses > 1 ? 1 : 0);
    for (const [key, token] of this.entries) {
      if (accountEmail !== undefined && token.accountEmail !== accountEmail) continue;
      if (oldest === undefined || rank(token) < rank(oldest) || (rank(token) === rank(oldest) && token.lastUsedAt < oldest.lastUsedAt)) {
        oldest = token;
        oldestKey = key;
      }
    }
    if (oldestKey === undefined) return;
    this.entries.delete(oldestKey);
    this.onEvict(oldestKey);
  }
}
