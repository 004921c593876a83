import { InvalidClientSecretsError } from '../errors.js';
import { Secret } from '../secret.js';

/** Google's revocation endpoint, used when the client file names none. */
export const GOOGLE_REVOKE_URI = 'https://oauth2.googleapis.com/revoke';

/** What tokend needs of a Google OAuth client of type "Desktop app". */
export interface ClientConfig {
  clientId: string;
  clientSecret: Secret;
  authUri: string;
  tokenUri: string;
  revokeUri: string;
  projectId: string | undefined;
}

const HINT =
  'download the client file again from the Cloud Console (APIs & Services > Credentials > OAuth client ID, type "Desktop app")';

function requireString(obj: Record<string, unknown>, key: string, maxLength = 2048): string {
  const value = obj[key];
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw new InvalidClientSecretsError(`the client file has no valid "installed.${key}"`, { hint: HINT });
  }
  return value;
}

function requireEndpoint(obj: Record<string, unknown>, key: string): string {
  const value = requireString(obj, key);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidClientSecretsError(`"installed.${key}" in the client file is not a URL`, { hint: HINT });
  }
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new InvalidClientSecretsError(
      `"installed.${key}" must be an https:// URL (plain http is accepted only on loopback)`,
      { hint: HINT },
    );
  }
  return url.toString();
}

/**
 * Parses a Google client file (`{"installed": {...}}`). Web-application clients (`{"web": ...}`) are
 * refused with a message saying which kind to create, because their redirect rules differ.
 */
export function parseClientSecrets(text: string): ClientConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidClientSecretsError('the client file is not valid JSON', { hint: HINT });
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw new InvalidClientSecretsError('the client file is not a JSON object', { hint: HINT });
  }
  const root = parsed as Record<string, unknown>;
  const installed = root.installed;
  if (typeof installed !== 'object' || installed === null) {
    const kind = 'web' in root ? 'a "Web application" client' : 'not a Desktop app client';
    throw new InvalidClientSecretsError(`the client file is ${kind} (no "installed" section)`, { hint: HINT });
  }
  const fields = installed as Record<string, unknown>;
  return {
    clientId: requireString(fields, 'client_id'),
    clientSecret: new Secret(requireString(fields, 'client_secret')),
    authUri: requireEndpoint(fields, 'auth_uri'),
    tokenUri: requireEndpoint(fields, 'token_uri'),
    revokeUri: typeof fields.revoke_uri === 'string' ? requireEndpoint(fields, 'revoke_uri') : GOOGLE_REVOKE_URI,
    projectId: typeof fields.project_id === 'string' && fields.project_id !== '' ? fields.project_id : undefined,
  };
}

/** The stored form of a client config (inside the account's secret record). */
export interface StoredClientConfig {
  client_id: string;
  client_secret: string;
  auth_uri: string;
  token_uri: string;
  revoke_uri: string;
  project_id?: string;
}

export function clientToStored(client: ClientConfig): StoredClientConfig {
  return {
    client_id: client.clientId,
    client_secret: client.clientSecret.reveal(),
    auth_uri: client.authUri,
    token_uri: client.tokenUri,
    revoke_uri: client.revokeUri,
    ...(client.projectId === undefined ? {} : { project_id: client.projectId }),
  };
}

export function clientFromStored(stored: StoredClientConfig): ClientConfig {
  return parseClientSecrets(JSON.stringify({ installed: stored }));
}
