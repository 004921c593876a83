import type { AddressInfo } from 'node:net';
import type { Broker } from '../broker/broker.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { acceptOwnerOnly, type ConnectionBudget } from '../net/owner-only.js';
import { buildApp } from './app.js';
import { listenOnDescriptor } from './inherited-sockets.js';
import { MetadataGuard } from './metadata-guard.js';
import type { MetadataFacts } from './metadata-routes.js';

export interface MetadataListenerOptions {
  broker: Broker;
  logger: Logger;
  port: number;
  ipv6: boolean;
  facts: MetadataFacts;
  /** The daemon's budget of TCP connections, shared with the consent listeners. */
  connections: ConnectionBudget;
  /** Start even where the owner of a connection cannot be looked up (macOS). */
  allowUnverifiedPeers: boolean;
  /** A listening TCP socket the service manager bound (socket activation), used instead of binding. */
  fd?: number;
  platform?: NodeJS.Platform;
}

export interface MetadataListener {
  port: number;
  addresses: string[];
  /** `uid`: every connection's owner is checked; `unverified`: the platform cannot tell (explicit opt-in). */
  peerCheck: 'uid' | 'unverified';
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1']);

/** Keep-alive clients (Google's libraries keep one or two each) and gcloud's one connection per call. */
const MAX_CONNECTIONS = 128;

/**
 * The opt-in metadata listener on loopback TCP, for clients that only speak TCP (Google's SDKs,
 * gcloud). It serves the metadata tree and nothing else — never the management API — only to
 * connections of the daemon's own uid, and only requests that a local program, not a web page or a
 * relay, would send.
 */
export async function startMetadataListener(options: MetadataListenerOptions): Promise<MetadataListener> {
  const platform = options.platform ?? process.platform;
  const verifiable = platform === 'linux';
  if (!verifiable && !options.allowUnverifiedPeers) {
    throw new ConfigError(`the metadata listener cannot check which user connects on ${platform}, so it does not start`, {
      hint: 'every local user could get your tokens from it; if you are the only user of this machine, set "metadataAllowUnverifiedPeers": true in the config file (docs/configuration.md)',
    });
  }
  const hosts = options.fd !== undefined ? ['inherited'] : options.ipv6 ? ['127.0.0.1', '::1'] : ['127.0.0.1'];
  const apps: Array<ReturnType<typeof buildApp>> = [];
  let port = options.port;
  try {
    for (const [index, host] of hosts.entries()) {
      const app = buildApp({
        broker: options.broker,
        logger: options.logger,
        callerOf: (request) => ({ transport: 'tcp', ...(request.socket.remotePort === undefined ? {} : { port: request.socket.remotePort }) }),
        guard: new MetadataGuard(() => port, options.logger),
        metadata: options.facts,
      });
      acceptOwnerOnly(app.server, {
        listener: 'metadata',
        maxConnections: MAX_CONNECTIONS,
        budget: options.connections,
        whenUnsupported: options.allowUnverifiedPeers ? 'accept' : 'refuse',
        logger: options.logger,
      });
      apps.push(app);
      if (options.fd === undefined) await app.listen({ host, port });
      else await listenOnDescriptor(app, options.fd);
      const address = app.server.address();
      if (options.fd !== undefined && (typeof address !== 'object' || address === null || !LOOPBACK.has(address.address))) {
        throw new ConfigError(`the socket the service manager passed as "metadata" is not on loopback (${typeof address === 'object' && address !== null ? address.address : String(address)})`, {
          hint: 'give its socket unit ListenStream=127.0.0.1:PORT (or [::1]:PORT) and FileDescriptorName=metadata',
        });
      }
      port = (address as AddressInfo).port;
      hosts[index] = (address as AddressInfo).address;
    }
  } catch (error) {
    await Promise.all(apps.map((app) => app.close()));
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      throw new ConfigError(`the metadata listener cannot listen on port ${options.port} (${code === 'EADDRINUSE' ? 'another program uses it' : 'not allowed'})`, {
        hint: `choose another port: \`tokend serve --metadata-port ${options.port === 8085 ? 8086 : 8085}\``,
      });
    }
    throw error;
  }
  options.logger.info({ event: 'metadata_listening', addresses: hosts, port, peer_check: verifiable ? 'uid' : 'unverified' }, `metadata listener on ${hosts.join(', ')} port ${port}`);
  return {
    port,
    addresses: hosts,
    peerCheck: verifiable ? 'uid' : 'unverified',
    close: async () => {
      await Promise.all(apps.map((app) => app.close()));
    },
  };
}
