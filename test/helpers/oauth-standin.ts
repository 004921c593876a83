/**
 * A Google-like OAuth authorization server for tests: oidc-provider@8 on 127.0.0.1, configured the way
 * Google treats a Desktop client (refresh tokens without offline_access, no rotation unless switched on,
 * granular consent, unknown scopes rejected, revocation of everything granted to the project), with
 * fault injection on the token endpoint and counters that tests can assert on.
 * test/integration/standin.test.ts shows every feature in use.
 */
import { generateKeyPair, randomBytes, createHash, type JsonWebKey } from 'node:crypto';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

export const GOOGLE_SCOPES = [
  'openid',
  'email',
  'profile',
  'https://www.googleapis.com/auth/bigquery',
  'https://www.googleapis.com/auth/cloud-platform',
  'https://www.googleapis.com/auth/devstorage.read_only',
  'https://www.googleapis.com/auth/userinfo.email',
] as const;

/** Granted whenever requested; the consent page lists only the other scopes. */
export const IDENTITY_SCOPES: ReadonlySet<string> = new Set(['openid', 'email', 'profile']);

export const CALLBACK_PATH = '/oauth2callback';

export interface StandinOptions {
  /**
   * The account a consent signs in as, unless the login form names another email (an attacker's own
   * account, say); default alice@example.com.
   */
  email?: string;
  /** Declared in addition to GOOGLE_SCOPES. */
  extraScopes?: string[];
  /** ttl.AccessToken; default 3600. */
  accessTokenTtlSeconds?: number;
  /** Initial state of the rotation switch; default false (Google does not rotate). */
  rotateRefreshTokens?: boolean;
  /** Where secrets are recorded; default $TOKEND_TEST_ARTIFACTS, none when unset. */
  artifactsDir?: string;
}

/**
 * One answer of the token endpoint replaced by a failure. `status` answers that status with
 * `{"error":"temporarily_unavailable"}`; `delayMs` answers normally after the delay; `reset` destroys the
 * connection without answering; `resetMidBody` sends the headers and half a body, then destroys it;
 * `hang` never answers (`headers`) or never finishes the body it started (`body`), and never closes;
 * `raw` answers exactly that; `alter` lets oidc-provider answer (a real token is minted) and then
 * changes the JSON, as a broken or malicious server would.
 */
export type TokenFault =
  | { status: number; retryAfterSeconds?: number }
  | { delayMs: number }
  | { reset: true }
  | { resetMidBody: true }
  | { hang: 'headers' | 'body' }
  | { raw: { status: number; body: string; contentType?: string } }
  | { alter: (answer: Record<string, unknown>) => Record<string, unknown> }
  | { invalidGrant: true; subtype?: string; description?: string }
  | { invalidScope: true };

export interface StandinStats {
  /** Token-endpoint requests with grant_type=refresh_token, including those answered by a fault. */
  refreshGrants: number;
  codeGrants: number;
  revocations: number;
}

export interface Introspection {
  active: boolean;
  scope?: string;
  client_id?: string;
  sub?: string;
  exp?: number;
  token_type?: string;
  [claim: string]: unknown;
}

export interface StandinHandle {
  issuer: string;
  port: number;
  clientId: string;
  clientSecret: string;
  email: string;
  authUri: string;
  tokenUri: string;
  revokeUri: string;
  /** Consumed one per token-endpoint request, before oidc-provider sees it. */
  faults: TokenFault[];
  /** When set, only requests it accepts consume a fault (the others are answered normally). */
  faultWhen: ((form: URLSearchParams) => boolean) | undefined;
  stats: StandinStats;
  /** The `scope` form field of each refresh request, in order. */
  refreshRequests: { scope: string | undefined }[];
  /** Errors answered with a 500 (oidc-provider's server_error or a stand-in bug); empty in a healthy run. */
  serverErrors: Error[];
  resetStats(): void;
  /** While down, every token request fails with `fault` (default: 503). The queue is left alone. */
  setDown(down: boolean, fault?: TokenFault): void;
  setRotateRefreshTokens(rotate: boolean): void;
  /** A Google "Desktop app" client file for this client, as a JSON string. */
  clientSecretsJson(): string;
  /** Writes client_secrets.json into `dir` (mode 0600) and returns its path. */
  writeClientSecrets(dir: string): string;
  introspect(token: string): Promise<Introspection>;
  stop(): Promise<void>;
}

export async function startStandin(options: StandinOptions = {}): Promise<StandinHandle> {
  const email = options.email ?? 'alice@example.com';
  const scopes = new Set<string>([...GOOGLE_SCOPES, ...(options.extraScopes ?? [])]);
  const clientId = `${randomBytes(8).toString('hex')}.apps.googleusercontent.com`;
  const clientSecret = `GOCSPX-${randomBytes(18).toString('base64url')}`;
  const switches: Switches = { rotate: options.rotateRefreshTokens ?? false, down: undefined };
  const store = new Map<string, StoredEntry>();
  const accounts = new Map<string, string>([[subjectFor(email), email]]);

  // Importing oidc-provider (~0.5 s) and generating its RSA key (~0.3 s, off the main thread) overlap.
  const dependencies = Promise.all([loadProvider(), signingKey()]);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const recordSecret = secretRecorder(options.artifactsDir ?? process.env.TOKEND_TEST_ARTIFACTS, port);
  recordSecret(clientSecret);

  const [Provider, key] = await dependencies;
  const { accessTokenTtlSeconds } = options;
  const provider = new Provider(
    issuer,
    configuration({ clientId, clientSecret, accounts, scopes, key, store, switches, accessTokenTtlSeconds }),
  );

  const handle: StandinHandle = {
    issuer,
    port,
    clientId,
    clientSecret,
    email,
    authUri: `${issuer}/auth`,
    tokenUri: `${issuer}/token`,
    revokeUri: `${issuer}/token/revocation`,
    faults: [],
    faultWhen: undefined,
    stats: { refreshGrants: 0, codeGrants: 0, revocations: 0 },
    refreshRequests: [],
    serverErrors: [],
    resetStats() {
      Object.assign(handle.stats, { refreshGrants: 0, codeGrants: 0, revocations: 0 });
      handle.refreshRequests.length = 0;
    },
    setDown(down, fault = { status: 503 }) {
      switches.down = down ? fault : undefined;
    },
    setRotateRefreshTokens(rotate) {
      switches.rotate = rotate;
    },
    clientSecretsJson: () => clientSecretsJson(handle),
    writeClientSecrets(dir) {
      const path = join(dir, 'client_secrets.json');
      writeFileSync(path, clientSecretsJson(handle), { mode: 0o600 });
      return path;
    },
    introspect: (token) => introspect(handle, token),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  for (const event of ['access_token.saved', 'refresh_token.saved', 'authorization_code.saved']) {
    // Opaque tokens are handed out as their jti.
    provider.on(event, (token: { jti: string }) => recordSecret(token.jti, event === 'access_token.saved' ? 'access' : undefined));
  }
  provider.on('server_error', (_ctx: unknown, error: Error) => handle.serverErrors.push(error));
  // Errors thrown by the middleware below; listening also stops Koa from printing them.
  provider.app.on('error', (error: Error) => handle.serverErrors.push(error));

  provider.use(rejectUnknownScopes(scopes));
  provider.use(tokenEndpoint(handle, switches, recordSecret));
  provider.use(googleStyleRevocation(handle, store));
  provider.use(interactionPages(provider, email, accounts));
  server.on('request', provider.callback());
  return handle;
}

interface Switches {
  rotate: boolean;
  /** While set, every token request is answered with this fault. */
  down: TokenFault | undefined;
}

interface ConfigurationInputs {
  clientId: string;
  clientSecret: string;
  /** Known accounts by subject. */
  accounts: ReadonlyMap<string, string>;
  scopes: ReadonlySet<string>;
  key: JsonWebKey;
  store: Map<string, StoredEntry>;
  switches: Switches;
  accessTokenTtlSeconds?: number;
}

/** oidc-provider's configuration for one Google-like Desktop client and its accounts. */
function configuration(inputs: ConfigurationInputs): object {
  const { clientId, clientSecret, accounts, switches } = inputs;
  return {
    adapter: memoryAdapter(inputs.store),
    jwks: { keys: [inputs.key] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        application_type: 'native',
        token_endpoint_auth_method: 'client_secret_post',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        // A native client's loopback redirect accepts any port (RFC 8252 §7.3).
        redirect_uris: [`http://127.0.0.1${CALLBACK_PATH}`],
      },
    ],
    scopes: [...inputs.scopes],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      'https://www.googleapis.com/auth/userinfo.email': ['email', 'email_verified'],
      profile: ['name'],
    },
    // Google puts the email in the ID token even though it also serves userinfo.
    conformIdTokenClaims: false,
    findAccount: (_ctx: unknown, sub: string) => {
      const email = accounts.get(sub);
      return email === undefined ? undefined : account(email);
    },
    // Google hands refresh tokens to installed apps without offline_access, and they outlive the session.
    issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(grant: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    expiresWithSession: () => false,
    rotateRefreshToken: () => switches.rotate,
    pkce: { methods: ['S256'], required: () => true },
    responseTypes: ['code'],
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: true, allowedPolicy: () => true },
      revocation: { enabled: true },
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    clientBasedCORS: () => false,
    renderError: (ctx: KoaContext, out: { error: string; error_description?: string }) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1 id="error">${escapeHtml(out.error)}</h1>
<p id="error-description">${escapeHtml(out.error_description ?? '')}</p>`);
    },
    ttl: {
      AccessToken: inputs.accessTokenTtlSeconds ?? 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 180 * DAY,
      Grant: 180 * DAY,
      Session: DAY,
      Interaction: 3600,
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// oidc-provider and Koa, as far as this file uses them

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  req: IncomingMessage;
  res: ServerResponse;
  status: number;
  body: unknown;
  type: string;
  respond: boolean;
  oidc?: { route?: string; entities: Record<string, unknown> };
  set(field: string, value: string): void;
  redirect(url: string): void;
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

interface Interaction {
  uid: string;
  prompt: { name: string };
  params: { client_id: string; scope?: string };
  session?: { accountId: string };
}

interface Grant {
  addOIDCScope(scope: string): void;
  rejectOIDCScope(scope: string): void;
  save(): Promise<string>;
}

interface OidcProvider {
  use(middleware: KoaMiddleware): void;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: string, listener: (...args: never[]) => void): void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
  interactionResult(
    req: IncomingMessage,
    res: ServerResponse,
    result: object,
    options?: { mergeWithLastSubmission: boolean },
  ): Promise<string>;
  Grant: new (properties: { accountId: string; clientId: string }) => Grant;
  app: { on(event: 'error', listener: (error: Error) => void): void };
}

type ProviderConstructor = new (issuer: string, configuration: object) => OidcProvider;

// oidc-provider@8 ships no type declarations; a non-literal specifier keeps tsc from asking for them,
// and the interfaces above describe the part in use.
const OIDC_PROVIDER: string = 'oidc-provider';
async function loadProvider(): Promise<ProviderConstructor> {
  const module = (await import(OIDC_PROVIDER)) as { default: ProviderConstructor };
  return module.default;
}

// ---------------------------------------------------------------------------------------------------
// Middleware

function rejectUnknownScopes(known: ReadonlySet<string>): KoaMiddleware {
  return async (ctx, next) => {
    if (ctx.path !== '/auth') return next();
    const scope = ctx.method === 'POST' ? (await peekForm(ctx.req)).get('scope') : ctx.query.scope;
    const unknown = String(scope ?? '')
      .split(' ')
      .filter((s) => s !== '' && !known.has(s));
    if (unknown.length === 0) return next();
    // Google shows an error page rather than redirecting back.
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Error 400: invalid_scope', `<h1 id="error">invalid_scope</h1>
<p id="error-description">Some requested scopes were invalid. {invalid=[${escapeHtml(unknown.join(', '))}]}</p>`);
  };
}

function tokenEndpoint(
  handle: StandinHandle,
  switches: Switches,
  recordSecret: (value: string | undefined) => void,
): KoaMiddleware {
  return async (ctx, next) => {
    if (ctx.path !== '/token' || ctx.method !== 'POST') return next();
    const form = await peekForm(ctx.req);
    const grantType = form.get('grant_type');
    if (grantType === 'refresh_token') {
      handle.stats.refreshGrants += 1;
      handle.refreshRequests.push({ scope: form.get('scope') ?? undefined });
    } else if (grantType === 'authorization_code') {
      handle.stats.codeGrants += 1;
    }
    recordSecret(form.get('code_verifier') ?? undefined);

    const fault = switches.down ?? (handle.faultWhen === undefined || handle.faultWhen(form) ? handle.faults.shift() : undefined);
    if (fault !== undefined && (await answerWithFault(ctx, fault, form))) return;
    await next();
    const answer = ctx.body as { id_token?: string; refresh_token?: string } | undefined;
    recordSecret(answer?.id_token);
    // oidc-provider echoes an unrotated refresh token; Google leaves it out of refresh answers.
    if (grantType === 'refresh_token' && answer !== undefined && answer.refresh_token === form.get('refresh_token')) {
      delete answer.refresh_token;
    }
    if (fault !== undefined && 'alter' in fault && answer !== undefined) ctx.body = fault.alter({ ...answer });
  };
}

/** Returns false when the request should still be answered normally. */
async function answerWithFault(ctx: KoaContext, fault: TokenFault, form: URLSearchParams): Promise<boolean> {
  if ('delayMs' in fault) {
    await sleep(fault.delayMs);
    return false;
  }
  if ('alter' in fault) return false;
  if ('reset' in fault) {
    ctx.respond = false;
    ctx.req.socket.destroy();
    return true;
  }
  if ('resetMidBody' in fault || 'hang' in fault) {
    ctx.respond = false;
    if ('hang' in fault && fault.hang === 'headers') return true;
    ctx.res.writeHead(200, { 'content-type': 'application/json', 'content-length': '400' });
    ctx.res.write('{"access_token":"ya29.half-an-answer","expires_in":35');
    if ('resetMidBody' in fault) setTimeout(() => ctx.req.socket.destroy(), 20);
    return true;
  }
  if ('raw' in fault) {
    ctx.respond = false;
    ctx.res.writeHead(fault.raw.status, { 'content-type': fault.raw.contentType ?? 'application/json', 'cache-control': 'no-store' });
    ctx.res.end(fault.raw.body);
    return true;
  }
  ctx.set('Cache-Control', 'no-store');
  if ('status' in fault) {
    ctx.status = fault.status;
    if (fault.retryAfterSeconds !== undefined) ctx.set('Retry-After', String(fault.retryAfterSeconds));
    ctx.body = { error: 'temporarily_unavailable' };
  } else if ('invalidGrant' in fault) {
    ctx.status = 400;
    ctx.body = {
      error: 'invalid_grant',
      error_description: fault.description ?? 'Token has been expired or revoked.',
      ...(fault.subtype === undefined ? {} : { error_subtype: fault.subtype }),
    };
  } else {
    ctx.status = 400;
    const requested = (form.get('scope') ?? '').split(' ').join(', ');
    ctx.body = { error: 'invalid_scope', error_description: `Some requested scopes were invalid. {invalid=[${requested}]}` };
  }
  return true;
}

/**
 * oidc-provider revokes one grant; Google revokes everything the user granted to the project, for all
 * its tokens, whether the revoked token was an access or a refresh token. With a single client and a
 * single account, that is every grant and token in the store.
 */
function googleStyleRevocation(handle: StandinHandle, store: Map<string, StoredEntry>): KoaMiddleware {
  return async (ctx, next) => {
    if (ctx.path !== '/token/revocation' || ctx.method !== 'POST') return next();
    handle.stats.revocations += 1;
    await next();
    const entities = ctx.oidc?.entities ?? {};
    if (ctx.status === 200 && ('AccessToken' in entities || 'RefreshToken' in entities)) {
      for (const [key, entry] of store) {
        if (GRANT_BOUND_MODELS.has(entry.model)) store.delete(key);
      }
    }
  };
}

/** The login form signs in as the email typed into it, or as the stand-in's account for any other name. */
function interactionPages(provider: OidcProvider, email: string, accounts: Map<string, string>): KoaMiddleware {
  return async (ctx, next) => {
    const match = /^\/interaction\/([\w-]+)(\/login|\/confirm)?$/.exec(ctx.path);
    if (match === null) return next();
    const uid = match[1]!;
    const action = match[2];
    ctx.set('Cache-Control', 'no-store');
    let interaction: Interaction;
    try {
      interaction = await provider.interactionDetails(ctx.req, ctx.res);
    } catch {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page('Error', '<h1 id="error">This sign-in session has expired or is unknown.</h1>');
      return;
    }

    if (ctx.method === 'GET' && action === undefined) {
      ctx.type = 'html';
      const signedIn = interaction.session === undefined ? email : (accounts.get(interaction.session.accountId) ?? email);
      ctx.body = interaction.prompt.name === 'login' ? loginPage(uid) : consentPage(uid, interaction, signedIn);
      return;
    }
    if (ctx.method !== 'POST' || action === undefined) return next();

    const form = new URLSearchParams(await readBody(ctx.req));
    let result: object;
    if (action === '/login') {
      const typed = form.get('login') ?? '';
      const who = typed.includes('@') ? typed.toLowerCase() : email;
      accounts.set(subjectFor(who), who);
      result = { login: { accountId: subjectFor(who) } };
    } else {
      result = await consentResult(provider, interaction, form);
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: !('error' in result),
    });
    ctx.status = 303;
    ctx.redirect(returnTo);
  };
}

/** Grants the identity scopes asked for and the ticked ones; the rest count as refused. */
async function consentResult(provider: OidcProvider, interaction: Interaction, form: URLSearchParams) {
  if (form.get('decision') !== 'allow') {
    return { error: 'access_denied', error_description: 'The user denied access.' };
  }
  const ticked = new Set(form.getAll('scope'));
  const requested = requestedScopes(interaction);
  const granted = requested.filter((s) => IDENTITY_SCOPES.has(s) || ticked.has(s));
  const refused = requested.filter((s) => !granted.includes(s));

  // A fresh grant per consent, so earlier consents do not leak scopes into this one.
  const grant = new provider.Grant({ accountId: interaction.session!.accountId, clientId: interaction.params.client_id });
  grant.addOIDCScope(granted.join(' '));
  if (refused.length > 0) grant.rejectOIDCScope(refused.join(' '));
  return { consent: { grantId: await grant.save() } };
}

// ---------------------------------------------------------------------------------------------------
// Pages

function loginPage(uid: string): string {
  return page('Sign in', `<h1>Sign in</h1>
<form id="login-form" method="post" action="/interaction/${uid}/login">
  <label>Email or phone <input id="login" name="login" type="text" autofocus></label>
  <button id="next" type="submit">Next</button>
</form>`);
}

function consentPage(uid: string, interaction: Interaction, email: string): string {
  const listed = requestedScopes(interaction).filter((s) => !IDENTITY_SCOPES.has(s));
  const items = listed
    .map((s) => `  <li><label><input type="checkbox" name="scope" value="${escapeHtml(s)}" checked> ${escapeHtml(s)}</label></li>`)
    .join('\n');
  return page('Grant access', `<h1>tokend-test wants access to your Google Account</h1>
<p id="account">${escapeHtml(email)}</p>
<form id="consent-form" method="post" action="/interaction/${uid}/confirm">
<ul id="scopes">
${items}
</ul>
  <button id="allow" type="submit" name="decision" value="allow">Allow</button>
  <button id="deny" type="submit" name="decision" value="deny">Cancel</button>
</form>`);
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
${body}
</body></html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function requestedScopes(interaction: Interaction): string[] {
  return (interaction.params.scope ?? '').split(' ').filter((s) => s !== '');
}

// ---------------------------------------------------------------------------------------------------
// Account, keys, storage

const DAY = 24 * 60 * 60;

/** Google's `sub` is a stable number, never the email: keeping them different catches mix-ups. */
function subjectFor(email: string): string {
  const digest = createHash('sha256').update(email).digest();
  return `1${digest.readBigUInt64BE(0).toString().padStart(20, '0')}`;
}

function account(email: string) {
  const sub = subjectFor(email);
  return { accountId: sub, claims: () => ({ sub, email, email_verified: true }) };
}

let cachedKey: Promise<JsonWebKey> | undefined;
/** RSA key generation is the slowest part of start-up, so every stand-in in a process shares one key. */
function signingKey(): Promise<JsonWebKey> {
  cachedKey ??= promisify(generateKeyPair)('rsa', { modulusLength: 2048 }).then(({ privateKey }) => ({
    ...privateKey.export({ format: 'jwk' }),
    kid: 'standin',
    use: 'sig',
    alg: 'RS256',
  }));
  return cachedKey;
}

interface StoredEntry {
  model: string;
  payload: Record<string, unknown>;
}

const GRANT_BOUND_MODELS = new Set(['Grant', 'AccessToken', 'RefreshToken', 'AuthorizationCode']);

/** oidc-provider's adapter interface over one Map; expiry is left to oidc-provider's own checks. */
function memoryAdapter(store: Map<string, StoredEntry>) {
  return class MemoryAdapter {
    constructor(private readonly model: string) {}

    private key(id: string): string {
      return `${this.model}:${id}`;
    }

    upsert(id: string, payload: Record<string, unknown>): Promise<void> {
      store.set(this.key(id), { model: this.model, payload });
      return Promise.resolve();
    }

    find(id: string): Promise<Record<string, unknown> | undefined> {
      return Promise.resolve(store.get(this.key(id))?.payload);
    }

    findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
      const entry = [...store.values()].find((e) => e.model === this.model && e.payload.uid === uid);
      return Promise.resolve(entry?.payload);
    }

    findByUserCode(): Promise<undefined> {
      return Promise.resolve(undefined);
    }

    consume(id: string): Promise<void> {
      const entry = store.get(this.key(id));
      if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
      return Promise.resolve();
    }

    destroy(id: string): Promise<void> {
      store.delete(this.key(id));
      return Promise.resolve();
    }

    revokeByGrantId(grantId: string): Promise<void> {
      for (const [key, entry] of store) {
        if (entry.model === this.model && entry.payload.grantId === grantId) store.delete(key);
      }
      return Promise.resolve();
    }
  };
}

// ---------------------------------------------------------------------------------------------------
// Request bodies, client file, introspection, secret recording

/**
 * Reads a small form body and puts the bytes back into the stream, so that oidc-provider can still
 * parse it (handing it a pre-parsed body works too, but prints a warning).
 */
async function peekForm(req: IncomingMessage): Promise<URLSearchParams> {
  const length = Number(req.headers['content-length']);
  if (!Number.isSafeInteger(length) || length <= 0 || length > 64 * 1024) return new URLSearchParams();
  const chunks: Buffer[] = [];
  let received = 0;
  while (received < length) {
    const chunk = req.read() as Buffer | null;
    if (chunk !== null) {
      chunks.push(chunk);
      received += chunk.length;
    } else if (req.readableEnded || req.destroyed) {
      break;
    } else {
      await nextReadable(req);
    }
  }
  const body = Buffer.concat(chunks);
  if (!req.readableEnded) req.unshift(body);
  return new URLSearchParams(body.toString('utf8'));
}

function nextReadable(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('readable', done);
      req.off('close', done);
      resolve();
    };
    req.on('readable', done);
    req.on('close', done);
  });
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function clientSecretsJson(handle: StandinHandle): string {
  return JSON.stringify({
    installed: {
      client_id: handle.clientId,
      project_id: 'tokend-test',
      auth_uri: handle.authUri,
      token_uri: handle.tokenUri,
      revoke_uri: handle.revokeUri,
      auth_provider_x509_cert_url: `${handle.issuer}/jwks`,
      client_secret: handle.clientSecret,
      redirect_uris: ['http://localhost'],
    },
  });
}

async function introspect(handle: StandinHandle, token: string): Promise<Introspection> {
  const response = await fetch(`${handle.issuer}/token/introspection`, {
    method: 'POST',
    body: new URLSearchParams({ token, client_id: handle.clientId, client_secret: handle.clientSecret }),
  });
  if (!response.ok) throw new Error(`introspection answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as Introspection;
}

/** Appends each secret to a file that a final test checks the logs against; a no-op without a dir. */
/**
 * Access tokens go to files of their own (`access-*`): they are handed to callers by design, so they
 * may appear in what `tokend token` prints, but never in a log.
 */
function secretRecorder(artifactsDir: string | undefined, port: number): (value: string | undefined, kind?: 'access') => void {
  if (artifactsDir === undefined || artifactsDir === '') return () => {};
  const dir = join(artifactsDir, 'secrets');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `standin-${process.pid}-${port}.txt`);
  const accessFile = join(dir, `access-standin-${process.pid}-${port}.txt`);
  return (value, kind) => {
    if (value) appendFileSync(kind === 'access' ? accessFile : file, `${value}\n`);
  };
}
