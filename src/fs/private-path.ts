import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, realpath, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, parse, sep } from 'node:path';
import { StoreUnavailableError, UnsafePathError } from '../errors.js';

/**
 * Owner-only directories and files: the config directory, the file store, the socket directory.
 * Nothing here follows a symbolic link, blocks on a FIFO, or trusts a file another user could have
 * written; a directory is re-verified (same device and inode) before each write into it, so a
 * directory swapped for a symlink after start is noticed.
 */

/** Which directory a path named when it was checked. */
export interface DirIdentity {
  path: string;
  dev: number;
  ino: number;
}

export interface PrivateDirOptions {
  /** Create it (0700, and missing parents 0700) when absent; otherwise a missing directory is an error. */
  create: boolean;
  /** Tighten a directory of ours that others may read or enter to 0700 (default), or refuse it. */
  others: 'tighten' | 'refuse';
  /** For messages: `configuration`, `socket`. */
  what: string;
}

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_NONBLOCK = constants.O_NONBLOCK ?? 0;
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;

function myUid(): number | undefined {
  return process.getuid?.();
}

/** Makes sure `dir` is a real directory of ours that nobody else can write; returns its identity. */
export async function ensurePrivateDir(dir: string, options: PrivateDirOptions): Promise<DirIdentity> {
  await checkAncestors(dir);
  let info = await lstatOrUndefined(dir);
  if (info === undefined) {
    if (!options.create) {
      throw new UnsafePathError(`the ${options.what} directory ${dir} does not exist`, {
        hint: 'start the daemon with `tokend serve`',
        details: { missing: true },
      });
    }
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StoreUnavailableError(`could not create the directory ${dir} (${errnoCode(err) ?? 'unknown error'})`, {
        hint: `check that ${dirname(dir)} exists and is writable by you`,
      });
    }
    info = await lstat(dir);
  }
  if (info.isSymbolicLink()) {
    throw new UnsafePathError(`the ${options.what} directory ${dir} is a symbolic link; tokend only uses a real directory there`, {
      hint: `remove the link (rm ${shellQuote(dir)}) or point tokend at the directory itself`,
    });
  }
  if (!info.isDirectory()) {
    throw new UnsafePathError(`${dir} is not a directory`, { hint: `remove it (rm ${shellQuote(dir)}) or choose another ${options.what} directory` });
  }
  checkOwner(info, dir);
  const mode = info.mode & 0o777;
  if ((mode & 0o022) !== 0) {
    throw new UnsafePathError(`the ${options.what} directory ${dir} is writable by other users (mode ${octal(mode)})`, {
      hint: `run \`chmod 700 ${shellQuote(dir)}\``,
    });
  }
  if ((mode & 0o077) !== 0) {
    if (options.others === 'refuse') {
      throw new UnsafePathError(`the ${options.what} directory ${dir} can be read by other users (mode ${octal(mode)})`, {
        hint: `run \`chmod 700 ${shellQuote(dir)}\``,
      });
    }
    await chmod(dir, 0o700);
  }
  return { path: dir, dev: info.dev, ino: info.ino };
}

/**
 * Every directory above `dir` must belong to root or to you, and not be writable by others unless it
 * is sticky (as /tmp is): whoever can write a parent could swap `dir` itself between a check and a use
 * (OpenSSH's StrictModes makes the same walk). Missing parents are skipped: they will be created 0700.
 */
async function checkAncestors(dir: string): Promise<void> {
  const uid = myUid();
  if (uid === undefined) return;
  let existing = dirname(dir);
  let real: string | undefined;
  while (real === undefined) {
    real = await realpath(existing).catch(() => undefined);
    if (real === undefined) {
      if (dirname(existing) === existing) return;
      existing = dirname(existing);
    }
  }
  const { root } = parse(real);
  const parts = real.slice(root.length).split(sep).filter((part) => part !== '');
  for (let i = parts.length; i >= 0; i--) {
    const ancestor = root + parts.slice(0, i).join(sep);
    const info = await stat(ancestor);
    if (info.uid !== 0 && info.uid !== uid) {
      throw new UnsafePathError(`${ancestor}, above ${dir}, belongs to uid ${info.uid}, who could replace ${dir}`, {
        hint: 'choose a path whose parent directories belong to you or to root',
      });
    }
    const sticky = (info.mode & 0o1000) !== 0;
    if ((info.mode & 0o022) !== 0 && !sticky) {
      throw new UnsafePathError(`${ancestor}, above ${dir}, is writable by other users (mode ${octal(info.mode & 0o777)}), who could replace ${dir}`, {
        hint: `run \`chmod go-w ${shellQuote(ancestor)}\`, or choose another path`,
      });
    }
  }
}

/** Throws when `identity.path` no longer names the directory that was checked. */
export async function assertSameDir(identity: DirIdentity): Promise<void> {
  const info = await lstatOrUndefined(identity.path);
  if (info === undefined || info.isSymbolicLink() || !info.isDirectory() || info.dev !== identity.dev || info.ino !== identity.ino) {
    throw new UnsafePathError(`the directory ${identity.path} was replaced while tokend was running; nothing was written`, {
      hint: `check who changed it (ls -ld ${shellQuote(identity.path)}), then restart tokend`,
    });
  }
  checkOwner(info, identity.path);
}

export interface ReadOptions {
  /** `secret`: exactly 0600. `config`: not writable by group or others. */
  kind: 'secret' | 'config';
}

/** The bytes of a file of ours, or undefined when it does not exist. */
export async function readPrivateFile(path: string, options: ReadOptions): Promise<Buffer | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, READ_FLAGS);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw openFailure(path, err);
  }
  try {
    checkReadable(await handle.stat(), path, options.kind);
    return await handle.readFile();
  } catch (err) {
    if (err instanceof UnsafePathError) throw err;
    throw new StoreUnavailableError(`could not read ${path} (${errnoCode(err) ?? 'unknown error'})`, { hint: `check that ${shellQuote(path)} is a file of yours` });
  } finally {
    await handle.close();
  }
}

/** readPrivateFile for start-up code that cannot wait (configuration is read before anything runs). */
export function readPrivateFileSync(path: string, options: ReadOptions): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw openFailure(path, err);
  }
  try {
    checkReadable(fstatSync(fd), path, options.kind);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** No link is followed, and a FIFO in the file's place answers at once instead of blocking. */
const READ_FLAGS = constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

function openFailure(path: string, err: unknown): Error {
  const code = errnoCode(err);
  if (code === 'ELOOP') {
    return new UnsafePathError(`${path} is a symbolic link; tokend only reads a regular file there`, {
      hint: `replace it with the file itself, or remove it: rm ${shellQuote(path)}`,
    });
  }
  return new StoreUnavailableError(`could not open ${path} (${code ?? 'unknown error'})`, { hint: 'check that the file is readable by you' });
}

/** Checked on the open descriptor, so what is checked is what is read. */
function checkReadable(info: Stats, path: string, kind: ReadOptions['kind']): void {
  if (!info.isFile()) throw new UnsafePathError(`${path} is not a regular file`, { hint: `remove it: rm ${shellQuote(path)}` });
  checkOwner(info, path);
  checkFileMode(info, path, kind);
}

/** The temporary files writeFileAtomic creates for `name`, so a reader can find what a crash left. */
export function isTempFileOf(name: string, candidate: string): boolean {
  return candidate.startsWith(`.${name}.`) && candidate.endsWith('.tmp');
}

/** The write failures a person can fix, said plainly, with the fix. */
const WRITE_FAILURES: Record<string, { what: string; fix: (dir: string) => string }> = {
  ENOSPC: { what: 'no space left on the device', fix: (dir) => `free some space on the disk that holds ${dir} (\`df -h ${shellQuote(dir)}\`), then ask again` },
  EDQUOT: { what: 'disk quota exceeded', fix: (dir) => `free some of your quota on the disk that holds ${dir} (\`quota -s\`), then ask again` },
  EROFS: { what: 'the file system is read-only', fix: (dir) => `remount the file system that holds ${dir} read-write, or point TOKEND_CONFIG_DIR at a writable directory and run \`tokend login\` again` },
  EACCES: { what: 'permission denied', fix: (dir) => `make ${dir} writable by you: \`ls -ld ${shellQuote(dir)}\` shows its owner; \`chmod 700 ${shellQuote(dir)}\` as that owner` },
  EIO: { what: 'an I/O error from the disk', fix: (dir) => `check the disk that holds ${dir} (\`dmesg\`)` },
};

/**
 * Replaces `dir/name` atomically: a new 0600 temp file in the same directory (O_EXCL), written and
 * fsynced, renamed over the target, then the directory fsynced. A crash leaves the old file or the
 * new one, never half of either (and possibly a complete temp file, which readers may recover).
 */
export async function writeFileAtomic(dir: DirIdentity, name: string, data: string | Buffer, mode = 0o600): Promise<void> {
  await assertSameDir(dir);
  const target = join(dir.path, name);
  // Loaded here, not at the top: the CLI's token path reads files but never writes one.
  const { randomBytes } = await import('node:crypto');
  const temp = join(dir.path, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  let renamed = false;
  try {
    handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, mode);
    await handle.chmod(mode); // the umask may have removed bits from `mode`
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, target);
    renamed = true;
    // The new file is in place; a failed directory fsync only leaves its durability unknown, and
    // reporting the write as failed would make the caller act as if the old content were still there.
    await fsyncDir(dir.path).catch(() => undefined);
  } catch (err) {
    const code = errnoCode(err);
    const why = code !== undefined && Object.hasOwn(WRITE_FAILURES, code) ? WRITE_FAILURES[code] : undefined;
    throw new StoreUnavailableError(`could not write ${target} (${why?.what ?? code ?? 'unknown error'}); nothing was changed`, {
      hint: why?.fix(dir.path) ?? `check that ${dir.path} is writable by you and its disk has room: \`ls -ld ${shellQuote(dir.path)}; df -h ${shellQuote(dir.path)}\``,
    });
  } finally {
    await handle?.close().catch(() => undefined);
    if (!renamed) await rm(temp, { force: true }).catch(() => undefined);
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function checkOwner(info: Pick<Stats, 'uid'>, path: string): void {
  const uid = myUid();
  if (uid === undefined) return; // Windows: no POSIX owner or mode
  if (info.uid !== uid) {
    throw new UnsafePathError(`${path} is owned by uid ${info.uid}, not by you (uid ${uid}); tokend refuses to use it`, {
      hint: `make it yours (chown ${uid} ${shellQuote(path)}) or choose another path`,
    });
  }
}

function checkFileMode(info: Pick<Stats, 'mode'>, path: string, kind: ReadOptions['kind']): void {
  if (myUid() === undefined) return;
  const mode = info.mode & 0o777;
  if (kind === 'secret' && mode !== 0o600) {
    throw new UnsafePathError(`${path} has mode ${octal(mode)}; a secrets file must be 0600`, { hint: `chmod 600 ${shellQuote(path)}` });
  }
  if (kind === 'config' && (mode & 0o022) !== 0) {
    throw new UnsafePathError(`${path} is writable by other users (mode ${octal(mode)}); tokend refuses to read it`, {
      hint: `chmod 600 ${shellQuote(path)}`,
    });
  }
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new StoreUnavailableError(`could not look at ${path} (${errnoCode(err) ?? 'unknown error'})`, { hint: `check the permissions of ${shellQuote(dirname(path))}` });
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/** Quotes a path for a hint the user may paste into a shell. */
export function shellQuote(value: string): string {
  return /^[\w@%+=:,./~-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}
