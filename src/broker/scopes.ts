import { InvalidScopeError } from '../errors.js';

const GOOGLE_SCOPE_PREFIX = 'https://www.googleapis.com/auth/';

/** Scopes that name the user rather than an API; they stay as written and are never served by default. */
export const IDENTITY_SCOPES: ReadonlySet<string> = new Set(['openid', 'email', 'profile']);

/** Google answers these in the token response's `scope` field for the short identity names. */
const IDENTITY_ALIASES: Record<string, string> = {
  [`${GOOGLE_SCOPE_PREFIX}userinfo.email`]: 'email',
  [`${GOOGLE_SCOPE_PREFIX}userinfo.profile`]: 'profile',
};

const SHORT_NAME = /^[a-z][a-z0-9._-]*$/i;
const MAX_SCOPES = 64;
const MAX_SCOPE_LENGTH = 256;
const SCOPE_SYNTAX =
  'a scope is a short name (bigquery, cloud-platform, devstorage.read_only), openid, email, profile, or a full https://www.googleapis.com/auth/... URL; separate them with commas';

/** Expands one scope as a user wrote it: `bigquery` → the full Google URL; URLs stay as they are. */
export function expandScope(raw: string): string {
  const scope = raw.trim();
  if (scope.length === 0 || scope.length > MAX_SCOPE_LENGTH) {
    throw new InvalidScopeError(`"${scope.slice(0, 40)}" is not a valid scope`, { hint: SCOPE_SYNTAX });
  }
  if (IDENTITY_SCOPES.has(scope)) return scope;
  if (scope.startsWith('https://')) {
    let url: URL;
    try {
      url = new URL(scope);
    } catch {
      throw new InvalidScopeError(`"${scope}" is not a valid scope URL`, { hint: SCOPE_SYNTAX });
    }
    if (url.search !== '' || url.hash !== '' || /\s/.test(scope)) {
      throw new InvalidScopeError(`"${scope}" is not a valid scope URL`, { hint: SCOPE_SYNTAX });
    }
    return scope;
  }
  if (!SHORT_NAME.test(scope)) {
    throw new InvalidScopeError(`"${scope}" is not a scope`, { hint: SCOPE_SYNTAX });
  }
  return GOOGLE_SCOPE_PREFIX + scope;
}

/** Normalizes a scope as the token endpoint reported it (aliases of identity scopes folded). */
export function normalizeGrantedScope(scope: string): string {
  return IDENTITY_ALIASES[scope] ?? scope;
}

/** Writes a scope the short way for messages and commands: `bigquery`, not the full URL. */
export function shortScope(scope: string): string {
  return scope.startsWith(GOOGLE_SCOPE_PREFIX) ? scope.slice(GOOGLE_SCOPE_PREFIX.length) : scope;
}

/** Lists parsed lately, as written: programs ask for the same few sets again and again. Sets are immutable. */
const parsedLists = new Map<string, ScopeSet>();
const MAX_REMEMBERED_LISTS = 256;
const MAX_REMEMBERED_LENGTH = 1024;

/**
 * An immutable, order-insensitive, duplicate-free set of full scope strings. Its `key` identifies it
 * in caches: two requests that name the same scopes in any order or spelling share one key.
 */
export class ScopeSet {
  readonly scopes: readonly string[];
  readonly key: string;
  /** The last set this one was found inside: a cache hit checks the same pair on every request. */
  private knownSuperset: ScopeSet | undefined;

  private constructor(
    scopes: Iterable<string>,
    /** How the OAuth server wrote each scope, where that differs (Google: `email` as `.../userinfo.email`). */
    private readonly spelledAs: ReadonlyMap<string, string> = new Map(),
  ) {
    this.scopes = Object.freeze([...new Set(scopes)].sort());
    this.key = this.scopes.join(' ');
  }

  static of(scopes: Iterable<string>): ScopeSet {
    return new ScopeSet(scopes);
  }

  /** Parses a user's list: commas and/or whitespace between scopes, short names expanded. */
  static parse(list: string): ScopeSet {
    const known = parsedLists.get(list);
    if (known !== undefined) return known;
    const parts = list.split(/[\s,]+/).filter((part) => part.length > 0);
    if (parts.length === 0) {
      throw new InvalidScopeError('no scopes given', { hint: 'name at least one, e.g. `tokend token --scopes cloud-platform`' });
    }
    if (parts.length > MAX_SCOPES) {
      throw new InvalidScopeError(`too many scopes (${parts.length}); at most ${MAX_SCOPES}`, {
        hint: 'ask for the scopes the program needs; cloud-platform alone covers most Google Cloud APIs',
      });
    }
    const parsed = new ScopeSet(parts.map((part) => normalizeGrantedScope(expandScope(part))));
    if (list.length <= MAX_REMEMBERED_LENGTH) {
      if (parsedLists.size >= MAX_REMEMBERED_LISTS) parsedLists.clear();
      parsedLists.set(list, parsed);
    }
    return parsed;
  }

  /** Parses the space-separated `scope` of a token response, folding Google's identity aliases. */
  static fromGranted(scopeField: string): ScopeSet {
    const written = scopeField.split(/\s+/).filter((s) => s.length > 0);
    const spelledAs = new Map(written.map((scope) => [normalizeGrantedScope(scope), scope]));
    return new ScopeSet(spelledAs.keys(), spelledAs);
  }

  /** `scope` as the OAuth server wrote it when it granted it: what to send back upstream. */
  spelling(scope: string): string {
    return this.spelledAs.get(scope) ?? scope;
  }

  /** Every scope as the OAuth server wrote it. */
  get spelled(): string[] {
    return this.scopes.map((scope) => this.spelling(scope));
  }

  get size(): number {
    return this.scopes.length;
  }

  has(scope: string): boolean {
    return this.scopes.includes(scope);
  }

  /** The scopes of this set that `other` lacks. */
  missingFrom(other: ScopeSet): string[] {
    return this.scopes.filter((scope) => !other.has(scope));
  }

  isSubsetOf(other: ScopeSet): boolean {
    if (other === this.knownSuperset) return true;
    if (!this.scopes.every((scope) => other.has(scope))) return false;
    this.knownSuperset = other;
    return true;
  }

  union(other: ScopeSet): ScopeSet {
    return new ScopeSet([...this.scopes, ...other.scopes]);
  }

  withoutIdentity(): ScopeSet {
    return new ScopeSet(this.scopes.filter((scope) => !IDENTITY_SCOPES.has(scope)));
  }

  /** For command lines: `bigquery,cloud-platform`. */
  toShortList(): string {
    return this.scopes.map(shortScope).join(',');
  }

  /** For people: `bigquery, cloud-platform`. */
  toDisplayList(): string {
    return this.scopes.map(shortScope).join(', ');
  }

  toString(): string {
    return this.key;
  }
}
