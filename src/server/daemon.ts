import { chmod, lstat, unlink } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { AccountRegistry } from '../broker/accounts.js';
import { Broker, type FreshnessPolicy } from '../broker/broker.js';
import { LoginManager } from '../broker/login.js';
import { ProjectNumbers } from '../broker/project-number.js';
import { ScopeSet } from '../broker/scopes.js';
import { systemClock, type Clock } from '../clock.js';
import { describeOrigin, type Config, type Settings } from '../config/config.js';
import { ConfigError, SocketInUseError } from '../errors.js';
import type { Logger } from '../log.js';
import { limitConnections } from '../net/connection-limit.js';
import { daemonConnectionBudget, readSoftFdLimit, RESERVED_FDS } from '../net/owner-only.js';
import { describeProxy } from '../net/proxy.js';
import { upstreamHttp, type UpstreamHttp } from '../net/upstream-fetch.js';
import { ResourceManager, type ProjectDirectory } from '../oauth/resource-manager.js';
import { TokenEndpoint, type OAuthEndpoint } from '../oauth/token-endpoint.js';
import { selectStore } from '../store/select-store.js';
import { VERSION } from '../version.js';
import { startMetadataListener, type MetadataListener } from './metadata-listener.js';
import type { MetadataFacts } from './metadata-routes.js';
import { migrateStore, type PersistentStore } from './store-migration.js';
import { probeUpstreams } from './upstream-probe.js';
import { buildApp } from './app.js';
import type { DaemonInfo } from './management-routes.js';
import { listenOnDescriptor, unixSocketPath, type InheritedSockets } from './inherited-sockets.js';
import { checkInheritedSocket, clearStaleSocket, prepareSocketDirectory } from './socket-path.js';

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  clock?: Clock;
  upstream?: OAuthEndpoint;
  projects?: ProjectDirectory;
  /** Listening sockets a service manager bound (systemd socket activation): used, never unlinked. */
  inherited?: InheritedSockets;
  policy?: Partial<FreshnessPolicy>;
}

export interface RunningDaemon {
  socket: string;
  broker: Broker;
  app: FastifyInstance;
  info: DaemonInfo;
  /** Stops accepting, lets requests in flight finish, stops background work, removes the socket. */
  close(): Promise<void>;
  /** Applies a new configuration's live settings; says which changed settings wait for a restart. */
  reload(next: Config): ReloadResult;
}

export interface ReloadResult {
  applied: Array<keyof Settings>;
  needRestart: Array<keyof Settings>;
}

/** Connections the Unix socket holds at most (fewer when the fd limit is low); beyond, the one idle longest is closed. */
const UNIX_SOCKET_CONNECTIONS = 1024;

/** Asked by `tokend doctor` when no account names its own endpoint yet. */
const GOOGLE_TOKEN_ENDPOINT = 'https://oauth2.googleapis.com/token';

/** What a reload changes in a running daemon; every other setting needs a restart to take effect. */
const LIVE_SETTINGS = ['logLevel', 'projectNumber', 'zone', 'prefetchScopes'] as const satisfies ReadonlyArray<keyof Settings>;


/** Wires store, broker, consent and HTTP together and listens on the Unix socket. */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const { config, logger } = options;
  const clock = options.clock ?? systemClock;
  const { settings } = config;
  const stopWatchingClock = clock.onJump?.((ms) =>
    logger.warn(
      { event: 'clock_jumped', seconds: Math.round(ms / 1000) },
      ms > 0 ? 'the wall clock moved forward (set ahead, or the machine woke from sleep): cached tokens are refreshed as their age requires' : 'the wall clock was set back: token ages keep counting on the monotonic clock',
    ),
  );

  const prefetch = parsePrefetch(config);

  const inherited = options.inherited ?? {};
  // The socket first: a second daemon must fail before it touches the store or its marker.
  if (inherited.unix === undefined) {
    await prepareSocketDirectory(settings.socket);
    await clearStaleSocket(settings.socket);
  } else {
    await adoptInheritedSocket(inherited.unix, settings.socket, logger);
  }

  const selection = await selectStore({
    setting: settings.store,
    origin: describeOrigin(config, 'store'),
    configDir: config.configDir,
    ...(config.filePassphrase === undefined ? {} : { passphrase: config.filePassphrase }),
    logger,
    keychainTimeoutMs: settings.keychainTimeoutMs,
  });
  logger.info(
    { event: 'store_selected', store: selection.kind, description: selection.store.description, reason: selection.reason },
    `secrets are kept in: ${selection.store.description}`,
  );

  const accounts = new AccountRegistry(selection.store, logger);
  await accounts.load();
  // Every upstream call goes out through this, and so through the proxy the environment names.
  const http = upstreamHttp({ env: process.env, extraCaCertificates: settings.extraCaCertificates });
  logUpstreamRoute(http, logger);
  const upstream = options.upstream ?? new TokenEndpoint({ timeoutMs: settings.upstreamTimeoutMs, fetch: http.fetch });
  const broker = new Broker({ accounts, upstream, clock, logger, ...(options.policy ? { policy: options.policy } : {}) });
  // Every TCP listener draws on one budget of descriptors, so none can starve the Unix socket.
  const softFdLimit = readSoftFdLimit();
  const connections = daemonConnectionBudget(softFdLimit);
  const logins = new LoginManager({ broker, upstream, clock, logger, timeoutMs: settings.loginTimeoutSeconds * 1000, connections });

  const projectNumbers = new ProjectNumbers({
    configured: settings.projectNumber,
    broker,
    directory: options.projects ?? new ResourceManager({ baseUrl: settings.resourceManagerUrl, timeoutMs: settings.upstreamTimeoutMs, fetch: http.fetch }),
    clock,
    logger,
    howToSet: `put "projectNumber": "<digits>" in ${config.configFile}, or set TOKEND_PROJECT_NUMBER for the daemon (the number is on the project's page in the Cloud console)`,
  });
  const info: DaemonInfo = {
    version: VERSION,
    pid: process.pid,
    socket: settings.socket,
    startedAt: clock.now(),
    store: {
      kind: selection.kind,
      description: selection.store.description,
      reason: selection.reason,
      ...(selection.warning === undefined ? {} : { warning: selection.warning }),
    },
    configFile: config.configFile,
    ...(process.env.TOKEND_SERVICE === undefined ? {} : { service: process.env.TOKEND_SERVICE }),
  };
  const migrate = (to: PersistentStore) =>
    migrateStore(
      {
        accounts,
        open: {
          configDir: config.configDir,
          ...(config.filePassphrase === undefined ? {} : { passphrase: config.filePassphrase }),
          logger,
          keychainTimeoutMs: settings.keychainTimeoutMs,
        },
        logger,
        info,
        now: () => clock.now(),
      },
      to,
    );
  // One object for both listeners, so that a reload changes what each answers.
  const facts: MetadataFacts = { projectNumbers, ...(settings.zone === undefined ? {} : { zone: settings.zone }) };
  const app = buildApp({
    broker,
    logger,
    metadata: facts,
    management: {
      logins,
      info,
      now: () => clock.now(),
      migrateStore: migrate,
      projectNumber: () => projectNumbers.status(),
      probeUpstream: () => {
        const endpoints = [...new Set(accounts.list().map((account) => account.client.tokenUri))];
        return probeUpstreams(endpoints.length > 0 ? endpoints : [GOOGLE_TOKEN_ENDPOINT], http, () => Date.now());
      },
    },
  });

  // Only the owner can connect, but the owner's own runaway program could open connections without end.
  limitConnections(app.server, {
    max: Math.max(16, Math.min(UNIX_SOCKET_CONNECTIONS, (softFdLimit ?? 4096) - RESERVED_FDS - connections.limit)),
    listener: 'unix',
    logger,
  });
  try {
    if (inherited.unix === undefined) {
      // A burst of callers (a build starting a thousand jobs) queues rather than meeting EAGAIN at
      // node's default backlog of 511. Socket units set their own (Backlog=, SOMAXCONN by default).
      await app.listen({ path: settings.socket, backlog: UNIX_SOCKET_CONNECTIONS });
    } else {
      await listenOnDescriptor(app, inherited.unix);
    }
  } catch (error) {
    await broker.stop();
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new SocketInUseError(`another tokend started on ${settings.socket} at the same moment`, {
        hint: 'use the running daemon (`tokend status`)',
      });
    }
    throw error;
  }
  if (inherited.unix === undefined) await chmod(settings.socket, 0o600);
  const socketIno = inherited.unix === undefined ? (await lstat(settings.socket)).ino : undefined;
  let metadata: MetadataListener | undefined;
  if (settings.metadataPort !== undefined || inherited.metadata !== undefined) {
    try {
      metadata = await startMetadataListener({
        broker,
        logger,
        port: settings.metadataPort ?? 0,
        ...(inherited.metadata === undefined ? {} : { fd: inherited.metadata }),
        ipv6: settings.metadataIpv6,
        facts,
        connections,
        allowUnverifiedPeers: settings.metadataAllowUnverifiedPeers,
      });
    } catch (error) {
      await app.close();
      await broker.stop();
      throw error;
    }
    info.metadata = { port: metadata.port, addresses: metadata.addresses, peerCheck: metadata.peerCheck };
    // gcloud's first question is the project number: have it before gcloud asks.
    projectNumbers.warm();
  }
  // The sets programs will ask for first thing: fetched now, and kept fresh whether used or not.
  const prefetchAll = (sets: ScopeSet[]) => {
    for (const scopes of sets) {
      broker.prefetch('default', scopes).catch((error: unknown) => {
        logger.warn({ event: 'prefetch_failed', scopes: scopes.scopes, err: error }, 'could not fetch a configured scope set');
      });
    }
  };
  prefetchAll(prefetch);
  logger.info(
    { event: 'listening', socket: settings.socket, metadata_port: metadata?.port, accounts: accounts.list().length, version: VERSION },
    `tokend ${VERSION} listening on ${settings.socket}`,
  );

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      // Sign-ins first: their long-polls then answer at once, and app.close() need not wait for them.
      await logins.closeAll('the daemon is shutting down');
      await Promise.all([app.close(), metadata?.close()]);
      await broker.stop();
      await http.close();
      stopWatchingClock?.();
      // Node removes the socket it bound; make sure, without touching a socket a newer daemon created
      // or one the service manager bound (it stays, to start the next daemon).
      try {
        if (socketIno !== undefined && (await lstat(settings.socket)).ino === socketIno) await unlink(settings.socket);
      } catch {
        // already gone
      }
      logger.info({ event: 'stopped' }, 'tokend stopped');
    })();
    return closing;
  };
  // What the daemon runs with: the settings it started with, and the live ones as last reloaded.
  const effective: Record<string, unknown> = { ...settings };
  const reload = (next: Config): ReloadResult => {
    const changed = (Object.keys(next.settings) as Array<keyof Settings>).filter(
      (name) => JSON.stringify(next.settings[name]) !== JSON.stringify(effective[name]),
    );
    const nextPrefetch = changed.includes('prefetchScopes') ? parsePrefetch(next) : undefined; // throws before anything changes
    const applied = changed.filter((name): name is (typeof LIVE_SETTINGS)[number] => (LIVE_SETTINGS as readonly string[]).includes(name));
    for (const name of applied) {
      if (name === 'logLevel') logger.level = next.settings.logLevel;
      if (name === 'projectNumber') projectNumbers.configure(next.settings.projectNumber);
      if (name === 'zone') {
        if (next.settings.zone === undefined) delete facts.zone;
        else facts.zone = next.settings.zone;
      }
      if (name === 'prefetchScopes' && nextPrefetch !== undefined) {
        broker.unpinAll();
        prefetchAll(nextPrefetch);
      }
    }
    const needRestart = changed.filter((name) => !(LIVE_SETTINGS as readonly string[]).includes(name));
    // The others keep their old value until a restart, and each reload says so again.
    for (const name of applied) effective[name] = next.settings[name];
    return { applied, needRestart };
  };
  return { socket: settings.socket, broker, app, info, close, reload };
}

function logUpstreamRoute(http: UpstreamHttp, logger: Logger): void {
  const { proxies } = http;
  if (proxies.http === undefined && proxies.https === undefined) return;
  const shown = (url: URL | undefined) => (url === undefined ? 'none' : describeProxy(url));
  logger.info(
    { event: 'upstream_proxy', https_proxy: shown(proxies.https), http_proxy: shown(proxies.http), no_proxy: proxies.noProxy },
    `upstream calls go through the proxy ${shown(proxies.https)} (https) and ${shown(proxies.http)} (http)${proxies.noProxy === '' ? '' : `, except for ${proxies.noProxy}`}`,
  );
}

function parsePrefetch(config: Config): ScopeSet[] {
  return config.settings.prefetchScopes.map((list) => {
    try {
      return ScopeSet.parse(list);
    } catch (error) {
      throw new ConfigError(`"prefetchScopes" in ${config.configFile} holds a bad scope list: ${(error as Error).message}`, {
        hint: `fix it, e.g. "prefetchScopes": ["cloud-platform"]`,
      });
    }
  });
}

/** The inherited socket is where clients look for it, and as private as one tokend binds itself. */
async function adoptInheritedSocket(fd: number, expected: string, logger: Logger): Promise<void> {
  const path = unixSocketPath(fd);
  if (path === undefined) {
    throw new ConfigError('the socket the service manager passed as "tokend" is not a Unix socket bound to a path', {
      hint: 'give the Unix socket\'s unit ListenStream=%t/tokend/tokend.sock and FileDescriptorName=tokend',
    });
  }
  await checkInheritedSocket(path);
  if (path !== expected) {
    logger.warn({ event: 'socket_path_differs', socket: path, expected }, `the service manager's socket is ${path}, but clients look for ${expected}`);
  }
  logger.info({ event: 'socket_inherited', socket: path }, `serving on the socket the service manager passed (${path})`);
}
