import { readFileSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import type { Server, Socket } from 'node:net';
import { floodLimitedCounter, type Logger } from '../log.js';
import { IdleTracker } from './connection-limit.js';
import { socketDiag } from './socket-diag.js';
import { tcpPeerUid, type PeerUid, type TcpEnds } from './tcp-peer-uid.js';

/**
 * Every loopback TCP listener of the daemon (the consent callback; the metadata listener, once built) accepts a
 * connection only when its client socket belongs to the daemon's own uid: any local user can reach
 * 127.0.0.1, and the listeners must answer only their owner. This module is the one place that decides.
 */

/** File descriptors the TCP listeners together may hold; the rest stay free for the Unix socket and the store. */
export interface ConnectionBudget {
  readonly limit: number;
  readonly inUse: number;
  tryAcquire(): boolean;
  release(): void;
}

/** Kept free of TCP connections whatever the fd limit: the Unix socket, store files, the keychain's D-Bus. */
export const RESERVED_FDS = 256;
const DEFAULT_TCP_BUDGET = 512;

export function createConnectionBudget(limit: number): ConnectionBudget {
  let inUse = 0;
  return {
    limit,
    get inUse() {
      return inUse;
    },
    tryAcquire() {
      if (inUse >= limit) return false;
      inUse++;
      return true;
    },
    release() {
      inUse = Math.max(0, inUse - 1);
    },
  };
}

/** The daemon-wide budget: at most 512 TCP connections, and never within RESERVED_FDS of the fd limit. */
export function daemonConnectionBudget(softFdLimit = readSoftFdLimit()): ConnectionBudget {
  const room = softFdLimit === undefined ? DEFAULT_TCP_BUDGET : softFdLimit - RESERVED_FDS;
  return createConnectionBudget(Math.max(16, Math.min(DEFAULT_TCP_BUDGET, room)));
}

export function readSoftFdLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    if (line === null || line[1] === 'unlimited') return undefined;
    return Number(line[1]);
  } catch {
    return undefined; // not Linux
  }
}

export interface OwnerOnlyOptions {
  /** For log lines: `consent`, `metadata`. */
  listener: string;
  /**
   * Connections this listener may hold at once once accepted; as many again may wait for the check,
   * so a flood of refused ones cannot crowd out the owner's.
   */
  maxConnections: number;
  budget: ConnectionBudget;
  /**
   * On a platform that cannot look owners up at all (macOS has no /proc/net/tcp): `accept`, for a
   * listener whose other defences are enough on their own, or `refuse`. Where owners can be looked
   * up, a connection whose owner is not found is always refused.
   */
  whenUnsupported: 'accept' | 'refuse';
  logger?: Logger;
  /** Default: this process's uid. */
  ownerUid?: number;
  /** Default: tcpPeerUid. */
  lookup?: (ends: TcpEnds) => Promise<PeerUid>;
}

export interface OwnerOnlyGuard {
  /** Connections held now (waiting for the check, or accepted). */
  readonly open: number;
  /** Connections dropped so far: another uid, unverifiable, or over a cap. */
  readonly refused: number;
  /** Destroys every connection and refuses new ones: the listener is done. */
  closeAll(): void;
}

/**
 * Makes `server` (a net or http server, before or after listen) hand a connection on only once its
 * peer is known to be the owner. Connections arrive paused, so nothing they send is parsed before
 * the check; refused ones are destroyed at once, so another user cannot hold the daemon's descriptors.
 */
export function acceptOwnerOnly(server: Server, options: OwnerOnlyOptions): OwnerOnlyGuard {
  const owner = options.ownerUid ?? process.getuid?.() ?? -1;
  const lookup = options.lookup ?? ((ends: TcpEnds) => tcpPeerUid(ends));
  if (options.lookup === undefined) void warnIfSlowLookup(options);
  const sockets = new Set<Socket>();
  const accepted = new Set<Socket>();
  const idle = new IdleTracker(server as HttpServer);
  const countRefusal = floodLimitedCounter();
  let refused = 0;
  let closed = false;

  const refuse = (socket: Socket, why: string, uid?: number) => {
    socket.destroy();
    refused++;
    const { count, log } = countRefusal(uid === undefined ? why : `uid ${uid}`);
    if (log) {
      options.logger?.warn(
        { event: 'connection_refused', listener: options.listener, reason: why, ...(uid === undefined ? {} : { uid }), count },
        'refused a connection',
      );
    }
  };

  (server as Server & { pauseOnConnect: boolean }).pauseOnConnect = true;
  // Runs before the HTTP server's own listener, which then finds the socket paused or destroyed.
  server.prependListener('connection', (socket: Socket) => {
    if (closed) return refuse(socket, 'listener closed');
    if (sockets.size - accepted.size >= options.maxConnections) return refuse(socket, 'too many connections waiting for the owner check');
    if (!options.budget.tryAcquire()) return refuse(socket, 'too many TCP connections to the daemon');
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      accepted.delete(socket);
      options.budget.release();
    });
    void check(socket);
  });

  const check = async (socket: Socket) => {
    let peer: PeerUid;
    try {
      peer = await lookup({
        localAddress: socket.localAddress ?? '',
        localPort: socket.localPort ?? 0,
        remoteAddress: socket.remoteAddress ?? '',
        remotePort: socket.remotePort ?? 0,
      });
    } catch {
      peer = { known: false, supported: true, reason: 'the owner of the connection could not be looked up' };
    }
    if (socket.destroyed) return;
    if (peer.known && peer.uid !== owner) return refuse(socket, 'the connecting process belongs to another user', peer.uid);
    if (!peer.known && (peer.supported || options.whenUnsupported === 'refuse')) return refuse(socket, peer.reason);
    if (accepted.size >= options.maxConnections) {
      // The owner's own runaway program must not lock the owner's other programs out: the connection
      // idle longest makes room, and only when all are busy is the new one refused.
      const victim = idle.longestIdle(accepted);
      if (victim === undefined) return refuse(socket, 'too many connections to this listener, all busy');
      accepted.delete(victim);
      victim.destroy();
      const { count, log } = countRefusal('evicted');
      if (log) options.logger?.warn({ event: 'connection_evicted', listener: options.listener, max: options.maxConnections, count }, 'closed the connection idle longest to make room');
    }
    accepted.add(socket);
    idle.add(socket);
    socket.resume();
  };

  return {
    get open() {
      return sockets.size;
    },
    get refused() {
      return refused;
    },
    closeAll() {
      closed = true;
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Loads the kernel lookup as the listener starts (not at its first connection) and says so once if it is not there. */
async function warnIfSlowLookup(options: OwnerOnlyOptions): Promise<void> {
  if (process.platform !== 'linux') return;
  const diag = await socketDiag();
  if ('unavailable' in diag) {
    options.logger?.warn(
      { event: 'owner_check_slow', listener: options.listener, reason: diag.unavailable },
      'TCP connection owners are looked up in /proc/net/tcp instead, which takes milliseconds per connection',
    );
  }
}
