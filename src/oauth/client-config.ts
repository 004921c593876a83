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

const DOWNLOAD_AGAIN =
  'download the client file again from the Cloud Console (APIs & Services > Credentials > your OAuth client of type "Desktop app" > Download JSON)';
const CREATE_DESKTOP_CLIENT =
  'create an OAuth client ID of type "Desktop app" in the Cloud Console (APIs & Services > Credentials > Create credentials) and download its JSON';

function requireString(obj: Record<string, unknown>, key: string, file: string, maxLength = 2048): string {
  const value = obj[key];
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw new InvalidClientSecretsError(`${file} has no valid "installed.${key}"`, { hint: DOWNLOAD_AGAIN });
  }
  return value;
}

function requireEndpoint(obj: Record<string, unknown>, key: string, file: string): string {
  const value = requireString(obj, key, file);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidClientSecretsError(`"installed.${key}" in ${file} is not a URL`, { hint: DOWNLOAD_AGAIN });
  }
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new InvalidClientSecretsError(`"installed.${key}" in ${file} must be an https:// URL (plain http is accepted only on loopback)`, {
      hint: DOWNLOAD_AGAIN,
    });
  }
  return url.toString();
}

/**
 * Parses a Google client file (`{"installed": {...}}`). Web-application clients (`{"web": ...}`) are
 * refused with a message saying which kind to create, because their redirect rules differ.
 */
export function parseClientSecrets(text: string, file = 'the client file'): ClientConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidClientSecretsError(`${file} is not valid JSON`, { hint: DOWNLOAD_AGAIN });
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw new InvalidClientSecretsError(`${file} is not a JSON object`, { hint: DOWNLOAD_AGAIN });
  }
  const root = parsed as Record<string, unknown>;
  const installed = root.installed;
  if (typeof installed !== 'object' || installed === null) {
    // Another kind of client cannot be fixed by downloading it again: a Desktop app client is needed.
    const kind = 'web' in root ? 'a "Web application" client' : 'not a Desktop app client';
    throw new InvalidClientSecretsError(`${file} is ${kind} (no "installed" section)`, { hint: CREATE_DESKTOP_CLIENT });
  }
  const fields = installed as Record<string, unknown>;
  return {
    clientId: requireString(fields, 'client_id', file),
    clientSecret: new Secret(requireString(fields, 'client_secret', file)),
    authUri: requireEndpoint(fields, 'auth_uri', file),
    tokenUri: requireEndpoint(fields, 'token_uri', file),
    revokeUri: typeof fields.revoke_uri === 'string' ? requireEndpoint(fields, 'revoke_uri', file) : GOOGLE_REVOKE_URI,
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
