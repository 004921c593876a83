import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Broker } from '../broker/broker.js';
import type { CallerOf } from './cached-token.js';
import type { LoginManager } from '../broker/login.js';
import { ScopeSet } from '../broker/scopes.js';
import { BadRequestError } from '../errors.js';
import type { ProjectNumberStatus, StoreInfo, StoreMoved, UpstreamProbe } from '../protocol.js';
import type { PersistentStore } from './store-migration.js';
import { sendJson } from './replies.js';

/** Facts about the daemon itself that `status` shows next to the broker's. */
export interface DaemonInfo {
  version: string;
  pid: number;
  socket: string;
  startedAt: number;
  store: StoreInfo;
  configFile: string;
  /** The opt-in TCP metadata listener, when it runs. */
  metadata?: { port: number; addresses: string[]; peerCheck: 'uid' | 'unverified' };
  /** Started by the service files `tokend service install` wrote: `systemd` or `launchd`. */
  service?: string;
}

export interface ManagementDeps {
  broker: Broker;
  logins: LoginManager;
  /** Moves the accounts to another store (`tokend store migrate`). */
  migrateStore: (to: PersistentStore) => Promise<StoreMoved>;
  info: DaemonInfo;
  /** The project number the metadata tree answers with, or why there is none. */
  projectNumber: () => ProjectNumberStatus;
  now: () => number;
  callerOf: CallerOf;
  /** Each OAuth endpoint of the accounts, asked once now (`tokend doctor`). */
  probeUpstream: () => Promise<UpstreamProbe[]>;
}

export const API_PREFIX = '/tokend/v1';
const API_HINT = 'docs/metadata.md describes the management API';
/** The longest a client may hold a `wait` request open; it then asks again. */
const MAX_WAIT_SECONDS = 25;

function stringField(body: unknown, name: string, required: true): string;
function stringField(body: unknown, name: string, required: false): string | undefined;
function stringField(body: unknown, name: string, required: boolean): string | undefined {
  const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined;
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value.length === 0) throw new BadRequestError(`the request needs a string "${name}"`, { hint: API_HINT });
  return value;
}

function booleanField(body: unknown, name: string, fallback: boolean): boolean {
  const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined;
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new BadRequestError(`"${name}" must be true or false`, { hint: API_HINT });
  return value;
}

/**
 * The API the CLI uses: login, logout, status and token with details. Registered on the Unix socket
 * only — never on a TCP listener — because it can add and remove accounts.
 */
export function registerManagementRoutes(app: FastifyInstance, deps: ManagementDeps): void {
  const { broker, logins, info } = deps;

  app.get(`${API_PREFIX}/status`, (_request, reply) => {
    const now = deps.now();
    return sendJson(reply, {
      daemon: {
        version: info.version,
        pid: info.pid,
        socket: info.socket,
        startedAt: new Date(info.startedAt).toISOString(),
        uptimeSeconds: Math.floor((now - info.startedAt) / 1000),
        configFile: info.configFile,
        metadata: info.metadata ?? null,
        service: info.service ?? null,
      },
      store: info.store,
      projectNumber: deps.projectNumber(),
      ...broker.status(),
    });
  });

  app.get(`${API_PREFIX}/upstream`, async (_request, reply) => sendJson(reply, { probes: await deps.probeUpstream() }));

  app.get(`${API_PREFIX}/token`, async (request: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply) => {
    const { scopes, account } = request.query;
    if (Array.isArray(scopes) || Array.isArray(account)) throw new BadRequestError('`scopes` and `account` were given more than once', { hint: 'give each once; scopes as one comma-separated list' });
    const issued = await broker.getToken({
      account: account ?? 'default',
      ...(scopes === undefined || scopes === '' ? {} : { scopes: ScopeSet.parse(scopes) }),
      caller: deps.callerOf(request),
    });
    reply.header('cache-control', 'no-store');
    return sendJson(reply, {
      access_token: issued.accessToken.reveal(),
      expires_in: issued.expiresIn,
      token_type: 'Bearer',
      account: issued.account,
      scopes: issued.scopes.scopes,
    });
  });

  app.post(`${API_PREFIX}/logins`, async (request, reply) => {
    const scopes = ScopeSet.parse(stringField(request.body, 'scopes', false) ?? 'cloud-platform');
    const loginHint = stringField(request.body, 'loginHint', false);
    const clientFile = stringField(request.body, 'clientFile', false);
    const started = await logins.start({
      clientSecrets: stringField(request.body, 'clientSecrets', true),
      scopes,
      ...(loginHint === undefined ? {} : { loginHint }),
      ...(clientFile === undefined ? {} : { clientFile }),
    });
    return sendJson(reply, { ...started, store: info.store }, 201);
  });

  app.get(
    `${API_PREFIX}/logins/:id`,
    async (request: FastifyRequest<{ Params: { id: string }; Querystring: { wait?: string } }>, reply) => {
      const wait = Math.min(MAX_WAIT_SECONDS, Math.max(0, Number(request.query.wait ?? 0) || 0));
      const outcome = await logins.wait(request.params.id, wait * 1000);
      return sendJson(reply, outcome === undefined ? { state: 'pending' } : { state: 'done', outcome });
    },
  );

  app.post(`${API_PREFIX}/logins/:id/redirect`, async (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const outcome = await logins.completeWithRedirectUrl(request.params.id, stringField(request.body, 'url', true));
    return sendJson(reply, { state: 'done', outcome });
  });

  app.delete(`${API_PREFIX}/logins/:id`, (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    logins.cancel(request.params.id);
    return sendJson(reply, { state: 'cancelled' });
  });

  app.put(`${API_PREFIX}/default`, async (request, reply) => {
    return sendJson(reply, await broker.setDefault(stringField(request.body, 'account', true)));
  });

  app.post(`${API_PREFIX}/store/migrate`, async (request, reply) => {
    const to = stringField(request.body, 'to', true);
    if (to !== 'keychain' && to !== 'file') {
      throw new BadRequestError(`cannot move the accounts to "${to}"`, { hint: 'give `--to keychain` or `--to file`' });
    }
    return sendJson(reply, await deps.migrateStore(to));
  });

  app.post(`${API_PREFIX}/logout`, async (request, reply) => {
    const result = await broker.logout(stringField(request.body, 'account', false) ?? 'default', {
      revoke: booleanField(request.body, 'revoke', true),
    });
    return sendJson(reply, result);
  });
}
