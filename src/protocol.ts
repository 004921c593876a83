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
}

export interface LoginOutcome {
  email: string;
  isNew: boolean;
  requested: string[];
  granted: string[];
  /** Requested API scopes the user did not grant (unticked on the consent screen). */
  notGranted: string[];
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

export type LoginStartResponse = LoginStarted & { store: StoreInfo };

export type LoginState = { state: 'pending' } | { state: 'done'; outcome: LoginOutcome };

export interface TokenResponse {
  access_token: string;
  expires_in: number;
  token_type: 'Bearer';
  account: string;
  scopes: string[];
}
