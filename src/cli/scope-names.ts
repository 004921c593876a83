/** Scopes as people read them (short names, API scopes first); full URLs stay for `--json`. */
const GOOGLE_SCOPE_PREFIX = 'https://www.googleapis.com/auth/';
const IDENTITY = new Set(['openid', 'email', 'profile', `${GOOGLE_SCOPE_PREFIX}userinfo.email`, `${GOOGLE_SCOPE_PREFIX}userinfo.profile`]);

export function shortScope(scope: string): string {
  return scope.startsWith(GOOGLE_SCOPE_PREFIX) ? scope.slice(GOOGLE_SCOPE_PREFIX.length) : scope;
}

/** `bigquery, cloud-platform`; identity scopes (openid, email) are left out: every login has them. */
export function apiScopeList(scopes: readonly string[]): string {
  return scopes
    .filter((scope) => !IDENTITY.has(scope))
    .map(shortScope)
    .join(', ');
}
