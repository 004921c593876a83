import { createCipheriv, createDecipheriv, randomBytes, scrypt, type BinaryLike, type ScryptOptions } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ConfigError,
  StoreCorruptError,
  StoreUnavailableError,
  UnsafePathError,
} from '../errors.js';
import type { Logger } from '../log.js';
import { Secret } from '../secret.js';
import type { Credential, SecretStore } from './secret-store.js';

/**
 * The `file` store: every entry in one JSON file, 0600 in a 0700 directory, replaced atomically on
 * each write. With a passphrase the entries are encrypted (scrypt, then AES-256-GCM); without one
 * they are plaintext and only the file mode protects them. Never a silent downgrade: an encrypted
 * file is never read or rewritten without its passphrase, and a plaintext file opened with a
 * passphrase is encrypted on the next write.
 */

export const SECRETS_FILE_NAME = 'secrets.json';

const FORMAT_VERSION = 1;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** What a new file is written with. */
const DEFAULT_KDF = { N: 2 ** 15, r: 8, p: 1 } as const;
/** Bounds for parameters read from a file, so a damaged header cannot make us allocate gigabytes. */
const MAX_LOG2_N = 20;
const MAX_R = 32;
const MAX_P = 16;
/** Associated data: binds the ciphertext to this format. */
const AAD = Buffer.from('tokend secrets file v1');

type Entries = Map<string, Map<string, string>>;

interface KdfParams {
  salt: Buffer;
  N: number;
  r: number;
  p: number;
}

interface EncryptionHeader {
  kdf: 'scrypt';
  salt: string;
  N: number;
  r: number;
  p: number;
  cipher: 'aes-256-gcm';
  iv: string;
  tag: string;
}

export interface FileStoreOptions {
  /** File name inside the directory; default `secrets.json`. */
  fileName?: string;
  /** Encrypts the file when given (normally from TOKEND_FILE_PASSPHRASE). */
  passphrase?: string | Secret;
  /** Gets the one-time warning when a plaintext file is about to be encrypted. */
  logger?: Logger;
}

export class FileStore implements SecretStore {
  readonly kind = 'file' as const;
  readonly description: string;
  /** True when a passphrase was given: everything this store writes is encrypted. */
  readonly encrypted: boolean;
  readonly dir: string;
  readonly path: string;

  readonly #fileName: string;
  readonly #passphrase: Buffer | undefined;
  readonly #logger: Logger | undefined;
  /** Derived keys by salt and parameters; scrypt takes ~100 ms, so each is derived once. */
  readonly #keys = new Map<string, Promise<Buffer>>();
  /** The KDF parameters of the file as last read or written; reused so the cached key applies. */
  #kdf: KdfParams | undefined;
  #dirChecked = false;
  #upgradeWarned = false;
  /** Tail of the queue that serializes every operation on this file. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(dir: string, options: FileStoreOptions = {}) {
    this.dir = dir;
    this.#fileName = options.fileName ?? SECRETS_FILE_NAME;
    this.path = join(dir, this.#fileName);
    const passphrase = options.passphrase instanceof Secret ? options.passphrase.reveal() : options.passphrase;
    if (passphrase !== undefined && passphrase.length === 0) {
      throw new ConfigError('the file store passphrase is empty', {
        hint: 'set TOKEND_FILE_PASSPHRASE to a non-empty passphrase, or unset it',
      });
    }
    this.#passphrase = passphrase === undefined ? undefined : Buffer.from(passphrase.normalize('NFC'), 'utf8');
    this.#logger = options.logger;
    this.encrypted = this.#passphrase !== undefined;
    this.description = `file ${this.path} (${this.encrypted ? 'encrypted' : 'not encrypted'})`;
  }

  /**
   * Checks the directory (created 0700 if missing), the file's mode and owner, that it parses, and
   * that the passphrase opens it. Selection calls this so a bad store fails at start-up, not later.
   */
  open(): Promise<void> {
    return this.#exclusive(async () => {
      await this.#load();
    });
  }

  getPassword(service: string, account: string): Promise<string | null> {
    return this.#exclusive(async () => (await this.#load()).get(service)?.get(account) ?? null);
  }

  setPassword(service: string, account: string, password: string): Promise<void> {
    return this.#exclusive(async () => {
      const entries = await this.#load();
      let accounts = entries.get(service);
      if (accounts === undefined) {
        accounts = new Map();
        entries.set(service, accounts);
      }
      accounts.set(account, password);
      await this.#save(entries);
    });
  }

  deletePassword(service: string, account: string): Promise<boolean> {
    return this.#exclusive(async () => {
      const entries = await this.#load();
      const accounts = entries.get(service);
      if (accounts === undefined || !accounts.delete(account)) return false;
      if (accounts.size === 0) entries.delete(service);
      await this.#save(entries);
      return true;
    });
  }

  findCredentials(service: string): Promise<Credential[]> {
    return this.#exclusive(async () => {
      const accounts = (await this.#load()).get(service);
      return accounts === undefined ? [] : [...accounts].map(([account, password]) => ({ account, password }));
    });
  }

  /** Runs `task` after every earlier operation on this store has settled, so no update is lost. */
  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task, task);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #load(): Promise<Entries> {
    if (!this.#dirChecked) {
      await ensurePrivateDir(this.dir);
      this.#dirChecked = true;
    }
    const raw = await this.#readFile();
    if (raw === undefined) return new Map();

    let doc: unknown;
    try {
      doc = JSON.parse(raw.toString('utf8'));
    } catch {
      throw this.#corrupt('is not valid JSON');
    }
    if (!isObject(doc)) throw this.#corrupt('is not a JSON object');
    if (doc.version !== FORMAT_VERSION) {
      throw this.#corrupt(`has an unknown format version (${JSON.stringify(doc.version) ?? 'none'})`);
    }

    if (doc.encryption !== undefined) {
      return this.#decrypt(doc);
    }
    if (!isObject(doc.entries)) throw this.#corrupt('has neither "entries" nor "encryption"');
    const entries = this.#parseEntries(doc.entries);
    if (this.#passphrase !== undefined && !this.#upgradeWarned) {
      this.#upgradeWarned = true;
      this.#logger?.warn(
        { store: 'file', file: this.path },
        'the secrets file is not encrypted; a passphrase is set, so it will be encrypted on the next write',
      );
    }
    return entries;
  }

  async #decrypt(doc: Record<string, unknown>): Promise<Entries> {
    if (this.#passphrase === undefined) {
      throw new StoreUnavailableError(`${this.path} is encrypted and no passphrase was given`, {
        hint: 'set TOKEND_FILE_PASSPHRASE to the passphrase the file was written with',
      });
    }
    const header = doc.encryption;
    if (
      !isObject(header) ||
      header.kdf !== 'scrypt' ||
      header.cipher !== 'aes-256-gcm' ||
      typeof doc.ciphertext !== 'string'
    ) {
      throw this.#corrupt('has an unsupported or damaged encryption header');
    }
    const salt = decodeBase64(header.salt, SALT_BYTES);
    const iv = decodeBase64(header.iv, IV_BYTES);
    const tag = decodeBase64(header.tag, TAG_BYTES);
    const ciphertext = decodeBase64(doc.ciphertext);
    const { N, r, p } = header;
    if (
      salt === undefined ||
      iv === undefined ||
      tag === undefined ||
      ciphertext === undefined ||
      typeof N !== 'number' ||
      typeof r !== 'number' ||
      typeof p !== 'number' ||
      !validKdfNumbers(N, r, p)
    ) {
      throw this.#corrupt('has an unsupported or damaged encryption header');
    }
    const kdf: KdfParams = { salt, N, r, p };
    const key = await this.#deriveKey(kdf);

    let plaintext: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(AAD);
      decipher.setAuthTag(tag);
      plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      // GCM authentication failed: a wrong passphrase (or a tampered file). Never overwrite it.
      throw new StoreUnavailableError(`wrong passphrase for ${this.path} (the file could not be decrypted)`, {
        hint: 'set TOKEND_FILE_PASSPHRASE to the passphrase the file was written with',
      });
    }
    let payload: unknown;
    try {
      payload = JSON.parse(plaintext.toString('utf8'));
    } catch {
      throw this.#corrupt('decrypted, but its content is not valid JSON');
    } finally {
      plaintext.fill(0);
    }
    if (!isObject(payload) || !isObject(payload.entries)) throw this.#corrupt('decrypted, but has no entries');
    this.#kdf = kdf;
    return this.#parseEntries(payload.entries);
  }

  #parseEntries(value: Record<string, unknown>): Entries {
    const entries: Entries = new Map();
    for (const [service, accounts] of Object.entries(value)) {
      if (!isObject(accounts)) throw this.#corrupt('has an entry that is not an object');
      const map = new Map<string, string>();
      for (const [account, password] of Object.entries(accounts)) {
        if (typeof password !== 'string') throw this.#corrupt('has a secret that is not a string');
        map.set(account, password);
      }
      entries.set(service, map);
    }
    return entries;
  }

  async #save(entries: Entries): Promise<void> {
    const plain = {
      entries: Object.fromEntries([...entries].map(([service, accounts]) => [service, Object.fromEntries(accounts)])),
    };
    let doc: unknown;
    if (this.#passphrase === undefined) {
      doc = { version: FORMAT_VERSION, ...plain };
    } else {
      this.#kdf ??= { salt: randomBytes(SALT_BYTES), ...DEFAULT_KDF };
      const kdf = this.#kdf;
      const key = await this.#deriveKey(kdf);
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(AAD);
      const json = Buffer.from(JSON.stringify(plain), 'utf8');
      const ciphertext = Buffer.concat([cipher.update(json), cipher.final()]);
      json.fill(0);
      const encryption: EncryptionHeader = {
        kdf: 'scrypt',
        salt: kdf.salt.toString('base64'),
        N: kdf.N,
        r: kdf.r,
        p: kdf.p,
        cipher: 'aes-256-gcm',
        iv: iv.toString('base64'),
        tag: cipher.getAuthTag().toString('base64'),
      };
      doc = { version: FORMAT_VERSION, encryption, ciphertext: ciphertext.toString('base64') };
    }
    await writeFileAtomic(this.dir, this.#fileName, `${JSON.stringify(doc)}\n`);
  }

  #deriveKey(kdf: KdfParams): Promise<Buffer> {
    const id = `${kdf.salt.toString('base64')}:${kdf.N}:${kdf.r}:${kdf.p}`;
    let key = this.#keys.get(id);
    if (key === undefined) {
      const passphrase = this.#passphrase;
      if (passphrase === undefined) throw new Error('no passphrase');
      key = scryptAsync(passphrase, kdf.salt, KEY_BYTES, {
        N: kdf.N,
        r: kdf.r,
        p: kdf.p,
        maxmem: 256 * kdf.N * kdf.r + 1024 * 1024,
      });
      // Only a few salts are ever seen (the file's, and a new one when it is first encrypted).
      if (this.#keys.size >= 4) this.#keys.clear();
      this.#keys.set(id, key);
      void key.catch(() => this.#keys.delete(id));
    }
    return key;
  }

  /** The file's bytes, or undefined when it does not exist yet. Checks owner and mode on the open fd. */
  async #readFile(): Promise<Buffer | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return undefined;
      if (code === 'ELOOP') {
        throw new UnsafePathError(`${this.path} is a symbolic link; tokend only uses a regular file there`, {
          hint: `replace it with the file itself, or remove it: rm ${shellQuote(this.path)}`,
        });
      }
      throw new StoreUnavailableError(`could not open ${this.path} (${code ?? 'unknown error'})`, {
        hint: 'check that the file is readable by you',
      });
    }
    try {
      checkOwnerAndMode(await handle.stat(), this.path, 'file');
      return await handle.readFile();
    } catch (err) {
      if (err instanceof UnsafePathError) throw err;
      throw new StoreUnavailableError(`could not read ${this.path} (${errnoCode(err) ?? 'unknown error'})`);
    } finally {
      await handle.close();
    }
  }

  #corrupt(what: string): StoreCorruptError {
    return new StoreCorruptError(`the secrets file ${this.path} ${what}; it was left untouched`, {
      hint: `move it aside (mv ${shellQuote(this.path)} ${shellQuote(`${this.path}.bad`)}) and run \`tokend login\` again`,
    });
  }
}

/**
 * Creates `dir` (0700) if missing; refuses one that is not a directory, is owned by another user,
 * or is writable by group or others.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  let created: string | undefined;
  try {
    created = await mkdir(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) await chmod(dir, 0o700);
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') {
      throw new StoreUnavailableError(`could not create the directory ${dir} (${errnoCode(err) ?? 'unknown error'})`, {
        hint: 'check that its parent directory exists and is writable by you',
      });
    }
  }
  const info = await stat(dir);
  if (!info.isDirectory()) {
    throw new UnsafePathError(`${dir} is not a directory`, { hint: 'choose another configuration directory' });
  }
  checkOwnerAndMode(info, dir, 'directory');
}

/**
 * Replaces `dir/name` atomically: a new 0600 temp file in the same directory (O_EXCL), written and
 * fsynced, renamed over the target, then the directory fsynced. A crash leaves the old file or the
 * new one, never half of either.
 */
export async function writeFileAtomic(dir: string, name: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const target = join(dir, name);
  const temp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  let renamed = false;
  try {
    handle = await open(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
      mode,
    );
    await handle.chmod(mode); // the umask may have removed bits from `mode`
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, target);
    renamed = true;
    await fsyncDir(dir);
  } catch (err) {
    throw new StoreUnavailableError(`could not write ${target} (${errnoCode(err) ?? 'unknown error'})`, {
      hint: 'check free disk space and that the directory is writable by you',
    });
  } finally {
    await handle?.close().catch(() => undefined);
    if (!renamed) await rm(temp, { force: true }).catch(() => undefined);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function checkOwnerAndMode(info: { uid: number; mode: number; isFile(): boolean }, path: string, what: 'file' | 'directory'): void {
  if (what === 'file' && !info.isFile()) {
    throw new UnsafePathError(`${path} is not a regular file`, { hint: `remove it: rm ${shellQuote(path)}` });
  }
  const uid = process.getuid?.();
  if (uid === undefined) return; // Windows: no POSIX owner or mode
  if (info.uid !== uid) {
    throw new UnsafePathError(`${path} is owned by uid ${info.uid}, not by you (uid ${uid}); tokend refuses to use it`, {
      hint: `make it yours (chown ${uid} ${shellQuote(path)}) or choose another directory`,
    });
  }
  const mode = info.mode & 0o777;
  if (what === 'directory' && (mode & 0o022) !== 0) {
    throw new UnsafePathError(
      `the directory ${path} is writable by group or others (mode ${octal(mode)}); tokend refuses to keep secrets there`,
      { hint: `chmod 700 ${shellQuote(path)}` },
    );
  }
  if (what === 'file' && mode !== 0o600) {
    throw new UnsafePathError(`${path} has mode ${octal(mode)}; a secrets file must be 0600`, {
      hint: `chmod 600 ${shellQuote(path)}`,
    });
  }
}

function scryptAsync(password: BinaryLike, salt: BinaryLike, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, options, (err, key) => (err === null ? resolve(key) : reject(err)));
  });
}

function validKdfNumbers(N: number, r: number, p: number): boolean {
  return (
    Number.isSafeInteger(N) &&
    Number.isSafeInteger(r) &&
    Number.isSafeInteger(p) &&
    N >= 2 &&
    N <= 2 ** MAX_LOG2_N &&
    (N & (N - 1)) === 0 &&
    r >= 1 &&
    r <= MAX_R &&
    p >= 1 &&
    p <= MAX_P
  );
}

function decodeBase64(value: unknown, length?: number): Buffer | undefined {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return undefined;
  const bytes = Buffer.from(value, 'base64');
  return length === undefined || bytes.length === length ? bytes : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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
