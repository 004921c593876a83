import { shellQuote } from '../fs/private-path.js';
import { ScopeSet } from './scopes.js';

/** Where a hint cannot know the client file (no account has been logged in yet). */
const PLACEHOLDER_CLIENT_FILE = 'client_secrets.json';

/**
 * The `tokend login` a hint tells the user to run, ready to paste: the client file, the scopes (short
 * names), and `--login-hint` when the consent must land on one account (a second Google account is
 * otherwise easy to pick by mistake).
 */
export function loginCommand(options: { clientFile?: string | undefined; scopes?: ScopeSet; loginHint?: string | undefined }): string {
  const scopes = (options.scopes ?? ScopeSet.parse('cloud-platform')).withoutIdentity().toShortList();
  const parts = ['tokend login', '--client-secrets', shellQuote(options.clientFile ?? PLACEHOLDER_CLIENT_FILE)];
  if (scopes !== '') parts.push('--scopes', shellQuote(scopes));
  if (options.loginHint !== undefined) parts.push('--login-hint', shellQuote(options.loginHint));
  return parts.join(' ');
}
