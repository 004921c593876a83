import { lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { SocketInUseError, UnsafePathError } from '../errors.js';
import { checkOwner, ensurePrivateDir } from '../fs/private-path.js';

const CONNECT_PROBE_MS = 1000;

/**
 * Makes the socket's directory ready: created 0700 when missing; refused when it is a symbolic link,
 * another user owns it, or others can write to it (someone else could then replace the socket and
 * receive every token request); tightened to 0700 when others could only look inside.
 */
export async function prepareSocketDirectory(socketPath: string): Promise<void> {
  await ensurePrivateDir(dirname(socketPath), { create: true, others: 'tighten', what: 'socket' });
}

/** True when something accepts connections on the socket: a live daemon. */
export function isSocketLive(socketPath: string, timeoutMs = CONNECT_PROBE_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    const done = (live: boolean) => {
      socket.destroy();
      resolve(live);
    };
    socket.setTimeout(timeoutMs, () => done(true));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * A leftover socket from a daemon that died is removed; a live one is never taken over: the second
 * daemon refuses to start instead.
 */
export async function clearStaleSocket(socketPath: string): Promise<void> {
  let info;
  try {
    info = await lstat(socketPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!info.isSocket()) {
    throw new UnsafePathError(`${socketPath} exists and is not a socket`, {
      hint: `remove it, or choose another path with --socket`,
    });
  }
  if (await isSocketLive(socketPath)) {
    throw new SocketInUseError(`another tokend is already serving on ${socketPath}`, {
      hint: 'use the running daemon (`tokend status` shows its pid), or stop that process first',
    });
  }
  await unlink(socketPath);
}

/**
 * A Unix socket a service manager bound for the daemon: its directory must be private as ours would
 * be (0700, yours), the socket yours and 0600 — the unit decides these (DirectoryMode=, SocketMode=),
 * and a unit that got them wrong must not hand every local user the tokens.
 */
export async function checkInheritedSocket(socketPath: string): Promise<void> {
  await ensurePrivateDir(dirname(socketPath), { create: false, others: 'refuse', what: 'socket' });
  const info = await lstat(socketPath);
  checkOwner(info, socketPath);
  if (!info.isSocket() || (info.mode & 0o077) !== 0) {
    throw new UnsafePathError(`the socket the service manager passed (${socketPath}) is ${info.isSocket() ? `mode ${(info.mode & 0o777).toString(8)}, open to others` : 'not a socket'}`, {
      hint: 'set SocketMode=0600 and DirectoryMode=0700 in the socket unit, then `systemctl --user daemon-reload && systemctl --user restart tokend.socket`',
    });
  }
}
