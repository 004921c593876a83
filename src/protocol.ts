/**
 * The shapes of the management API's bodies (src/server/management-routes.ts), shared by the daemon
 * that sends them and the client that reads them. Types only: nothing here runs.
 */
export interface LoginStarted {
  id: string;
  authUrl: string;
  /** Redirects to authUrl: what a browser on this machine is opened with (no state in any argv). */
  startUrl: string;
  redirectUri: string;
  expiresAt: string;
  /** The full `tokend login ...` that starts this sign-in again (for hints). */
  retryCommand: string;
}

export interface LoginOutcome {
  email: string;
  isNew: boolean;
  requested: string[];
  granted: string[];
  /** Requested API scopes the user did not grant (unticked on the consent screen). */
  notGranted: string[];
  /** The `tokend login ...` that grants what was asked, on the account that consented. */
  retryCommand: string;
  /** The default account after this login (a login never changes it), or null when there is none. */
  defaultAccount: string | null;
}

export interface DefaultChanged {
  email: string;
  /** The default before; the same as `email` when nothing changed. */
  previous?: string;
}

export interface StoreInfo {
  kind: string;
  description: string;
  reason: string;
  warning?: string;
}

/** The answer to `POST /tokend/v1/store/migrate`. */
export interface StoreMoved {
  from: 'keychain' | 'file';
  to: 'keychain' | 'file';
  /** Entry names (account emails) now in `to`. */
  moved: string[];
  /** Records the old store still holds (deleting them failed, or a copy differs). */
  leftovers: string[];
  /** When run again after an interrupted move: copies deleted from the old store. */
  cleaned: string[];
  /** The store the daemon uses from now on. */
  store: StoreInfo;
}

export type LoginStartResponse = LoginStarted & { store: StoreInfo };

export type LoginState = { state: 'pending' } | { state: 'done'; outcome: LoginOutcome };

/** `projectNumber` in the status document: gcloud ignores the metadata listener without the number. */
export type ProjectNumberStatus =
  | { state: 'configured'; projectNumber: string }
  | { state: 'found'; projectId: string; projectNumber: string }
  | { state: 'looking'; projectId: string }
  | { state: 'unknown'; projectId?: string; reason: string; hint: string };

export interface TokenResponse {
  access_token: string;
  expires_in: number;
  token_type: 'Bearer';
  account: string;
  scopes: string[];
}

/** `GET /tokend/v1/upstream`: each OAuth endpoint as the daemon reaches it (`tokend doctor`). */
export interface UpstreamProbe {
  /** host[:port] */
  endpoint: string;
  /** `directly`, or `through the proxy http://proxy:3128` */
  route: string;
  reachable: boolean;
  status?: number;
  elapsedMs: number;
  /** The server's clock minus ours, from its Date header (whole seconds). */
  skewSeconds?: number;
  problem?: string;
  hint?: string;
}
