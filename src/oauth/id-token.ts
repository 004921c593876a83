import { LoginFailedError } from '../errors.js';
import type { Secret } from '../secret.js';

/**
 * Reads the account email from the ID token of a code exchange. The token came straight from the
 * token endpoint over the connection tokend opened, which OpenID Connect Core §3.1.3.7 accepts in
 * place of a signature check; the audience is still checked, so a token minted for another client is
 * refused.
 */
const ID_TOKEN_HINT = "check that the client file's token_uri is Google's (https://oauth2.googleapis.com/token)";

export function emailFromIdToken(idToken: Secret | undefined, clientId: string): string {
  if (idToken === undefined) {
    throw new LoginFailedError('the OAuth server returned no ID token, so the account email is unknown', {
      hint: 'the authorization request asks for `openid email`; check that the client allows these scopes',
    });
  }
  const payloadPart = idToken.reveal().split('.')[1];
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(Buffer.from(payloadPart ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new LoginFailedError('the ID token returned by the OAuth server is malformed', { hint: ID_TOKEN_HINT });
  }
  const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audience.includes(clientId)) {
    throw new LoginFailedError('the ID token returned by the OAuth server was issued to another client', { hint: ID_TOKEN_HINT });
  }
  const email = claims.email;
  if (typeof email !== 'string' || !/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 320) {
    throw new LoginFailedError('the ID token has no email claim', {
      hint: 'grant the "email" permission on the consent screen',
    });
  }
  return email.toLowerCase();
}
