import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { SocketInUseError, UnsafePathError } from '../errors.js';

const CONNECT_PROBE_MS = 1000;

function uid(): number {
  return process.getuid?.() ?? -1;
}

/**
 * Makes the socket's directory ready: created 0700 when missing; refused when another user owns it or
 * others can write to it (someone else could then replace the socket and receive every token request).
 */
export async function prepareSocketDirectory(socketPath: string): Promise<void> {
  const dir = dirname(socketPath);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  if (!info.isDirectory()) {
    throw new UnsafePathError(`${dir} is not a directory`, { hint: `remove it, or choose another socket with --socket` });
  }
  const me = uid();
  if (me !== -1 && info.uid !== me) {
    throw new UnsafePathError(`the socket directory ${dir} belongs to another user (uid ${info.uid})`, {
      hint: `choose a directory of your own with --socket or TOKEND_SOCKET`,
    });
  }
  if ((info.mode & 0o022) !== 0) {
    throw new UnsafePathError(`the socket directory ${dir} is writable by other users`, {
      hint: `run \`chmod 700 '${dir}'\``,
    });
  }
  // A directory we own that only we can write: make sure nobody else can even look inside.
  if ((info.mode & 0o077) !== 0) await chmod(dir, 0o700);
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
