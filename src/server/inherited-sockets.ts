import { fstatSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { ConfigError } from '../errors.js';

/** The first descriptor systemd passes (SD_LISTEN_FDS_START). */
const FIRST_FD = 3;
const VARIABLES = ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

/** Listening sockets handed over by a service manager, by role. */
export interface InheritedSockets {
  /** The Unix socket of the management API and the metadata tree. */
  unix?: number;
  /** The loopback TCP socket of the metadata listener. */
  metadata?: number;
}

/** The names a socket unit gives with `FileDescriptorName=`; systemd's default is the unit's name. */
const ROLES: Record<string, keyof InheritedSockets> = { tokend: 'unix', 'tokend.socket': 'unix', metadata: 'metadata' };

/**
 * The sockets systemd passed (sd_listen_fds(3)): `LISTEN_PID` must be this process (otherwise they
 * were meant for a parent and are ignored), `LISTEN_FDS` of them from fd 3, told apart by
 * `LISTEN_FDNAMES`. The variables are removed from `env`, as sd_listen_fds(unset=1) does, so that no
 * child believes the sockets are its own.
 */
export function takeInheritedSockets(env: Record<string, string | undefined>, pid = process.pid): InheritedSockets {
  const { LISTEN_PID: listenPid, LISTEN_FDS: listenFds, LISTEN_FDNAMES: listenNames } = env;
  for (const name of VARIABLES) delete env[name];
  if (listenPid === undefined || listenFds === undefined || Number(listenPid) !== pid) return {};
  const count = /^\d{1,3}$/.test(listenFds) ? Number(listenFds) : Number.NaN;
  if (!Number.isInteger(count) || count < 1) {
    throw new ConfigError(`the service manager passed LISTEN_FDS=${JSON.stringify(listenFds)}, which is not a number of sockets`, { hint: SOCKET_UNIT_HINT });
  }
  // Without names (systemd-socket-activate without --fdname, old systemd), one socket is the Unix socket.
  const names = listenNames === undefined ? (count === 1 ? ['tokend'] : []) : listenNames.split(':');
  if (names.length !== count) {
    throw new ConfigError(`the service manager passed ${count} sockets but ${listenNames === undefined ? 'no names' : `${names.length} names (LISTEN_FDNAMES=${listenNames})`}`, {
      hint: SOCKET_UNIT_HINT,
    });
  }
  const sockets: InheritedSockets = {};
  names.forEach((name, index) => {
    const role = ROLES[name];
    if (role === undefined) {
      throw new ConfigError(`the service manager passed a socket named "${name}", which tokend does not know`, { hint: SOCKET_UNIT_HINT });
    }
    if (sockets[role] !== undefined) {
      throw new ConfigError(`the service manager passed two sockets for the ${role === 'unix' ? 'Unix socket' : 'metadata listener'}`, { hint: SOCKET_UNIT_HINT });
    }
    sockets[role] = FIRST_FD + index;
  });
  return sockets;
}

const SOCKET_UNIT_HINT = 'give the socket unit of the Unix socket FileDescriptorName=tokend and the one of the metadata listener FileDescriptorName=metadata, then `systemctl --user daemon-reload`';

/**
 * Listens on an inherited descriptor. fastify.listen() cannot: it reads the socket's address, which
 * Node does not know for a Unix socket it did not bind. fastify.close() still closes the server.
 */
export async function listenOnDescriptor(app: FastifyInstance, fd: number): Promise<void> {
  await app.ready();
  await new Promise<void>((resolve, reject) => {
    app.server.once('error', reject);
    app.server.listen({ fd }, () => {
      app.server.off('error', reject);
      resolve();
    });
  });
}

/** The path a listening Unix socket is bound to, from the kernel's table (/proc/net/unix, by inode). */
export function unixSocketPath(fd: number, table = '/proc/net/unix'): string | undefined {
  const inode = String(fstatSync(fd).ino);
  for (const row of readFileSync(table, 'utf8').split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const fields = row.trim().split(/\s+/);
    if (fields[6] === inode && fields[7] !== undefined) return fields[7];
  }
  return undefined;
}
