import { createCipheriv, createDecipheriv, randomBytes, scrypt, type BinaryLike, type ScryptOptions } from 'node:crypto';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, StoreCorruptError, StoreUnavailableError } from '../errors.js';
import {
  assertSameDir,
  ensurePrivateDir,
  fsyncDir,
  isTempFileOf,
  readPrivateFile,
  shellQuote,
  writeFileAtomic,
  type DirIdentity,
} from '../fs/private-path.js';
import type { Logger } from '../log.js';
import { Secret } from '../secret.js';
import type { Credential, SecretStore } from './secret-store.js';

/**
 * The `file` store: every entry in one JSON file, 0600 in a 0700 directory, replaced atomically on
 * each write. With a passphrase the entries are encrypted (scrypt, then AES-256-GCM); without one
 * they are plaintext and only the file mode protects them. Never a silent downgrade: an encrypted
 * file is never read or rewritten without its passphrase, and a plaintext file opened with a
 * passphrase is encrypted on the next write.
 *
 * Each write carries a generation number. A crash between writing the temp file and renaming it
 * leaves a complete temp file that may hold the only valid refresh token (after a rotation): the
 * next open takes the newest complete one whose generation is above the file's, and deletes the rest.
 */

export const SECRETS_FILE_NAME = 'secrets.json';

const FORMAT_VERSION = 1;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** What every write uses: scrypt's commonly recommended minimum for interactive use. */
const CURRENT_KDF = { N: 2 ** 17, r: 8, p: 1 } as const;
/**
 * The only parameter sets a file may ask for: the ones tokend has written. Anything else is refused,
 * so a doctored header cannot make an open() take seconds and gigabytes. The older set is read and
 * re-encrypted with CURRENT_KDF on the next write.
 */
const ACCEPTED_KDFS: ReadonlyArray<{ N: number; r: number; p: number }> = [CURRENT_KDF, { N: 2 ** 15, r: 8, p: 1 }];
/** Associated data: binds the ciphertext to this format. */
const AAD = Buffer.from('tokend secrets file v1');

type Entries = Map<string, Map<string, string>>;

/** A parsed file: its entries and the generation of the write that produced it. */
interface Contents {
  entries: Entries;
  generation: number;
  kdf: KdfParams | undefined;
}

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
  /** Set once the directory has been checked and crash leftovers dealt with. */
  #dir: DirIdentity | undefined;
  /** Of the last write read or made; each write gets the next one. */
  #generation = 0;
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
    if (this.#dir === undefined) {
      const dir = await ensurePrivateDir(this.dir, { create: true, others: 'tighten', what: 'configuration' });
      await this.#recoverFromCrash(dir);
      this.#dir = dir;
    } else {
      // Every read too: a directory swapped for a link to someone else's would be read, then written.
      await assertSameDir(this.#dir);
    }
    const contents = await this.#readContents(this.path);
    if (contents === undefined) return new Map();
    this.#generation = contents.generation;
    this.#kdf = contents.kdf;
    return contents.entries;
  }

  /** The parsed file at `path` (the store or a temp file), or undefined when it does not exist. */
  async #readContents(path: string): Promise<Contents | undefined> {
    const raw = await readPrivateFile(path, { kind: 'secret' });
    if (raw === undefined) return undefined;
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
    if (doc.encryption !== undefined) return this.#decrypt(doc);
    if (!isObject(doc.entries)) throw this.#corrupt('has neither "entries" nor "encryption"');
    const entries = this.#parseEntries(doc.entries);
    if (this.#passphrase !== undefined && !this.#upgradeWarned) {
      this.#upgradeWarned = true;
      this.#logger?.warn(
        { store: 'file', file: this.path },
        'the secrets file is not encrypted; a passphrase is set, so it will be encrypted on the next write',
      );
    }
    return { entries, generation: generationOf(doc), kdf: undefined };
  }

  /**
   * Temp files left by a crash: the newest complete one that is newer than the file replaces it (it
   * may hold a rotated refresh token the file lacks); every other one is deleted. The file itself is
   * read first, so nothing is touched when it cannot be (a wrong passphrase, say).
   */
  async #recoverFromCrash(dir: DirIdentity): Promise<void> {
    const leftovers = (await readdir(dir.path)).filter((name) => isTempFileOf(this.#fileName, name));
    if (leftovers.length === 0) return;
    const current = await this.#readContents(this.path);
    let best: { name: string; generation: number } | undefined;
    for (const name of leftovers) {
      let contents: Contents | undefined;
      try {
        contents = await this.#readContents(join(dir.path, name));
      } catch (error) {
        // Only a damaged one is what a crash in mid-write leaves, and is deleted below. Anything else
        // (a wrong or missing passphrase, EIO) stops the open with everything left in place: that
        // temp file may hold the only valid refresh token.
        if (error instanceof StoreCorruptError) continue;
        throw error;
      }
      if (contents === undefined) continue;
      if (contents.generation > (current?.generation ?? -1) && contents.generation > (best?.generation ?? -1)) {
        best = { name, generation: contents.generation };
      }
    }
    await assertSameDir(dir);
    if (best !== undefined) {
      await rename(join(dir.path, best.name), this.path);
      await fsyncDir(dir.path);
      this.#logger?.warn(
        { event: 'store_recovered', store: 'file', file: this.path, generation: best.generation },
        'recovered the secrets file from a complete write that a crash interrupted',
      );
    }
    for (const name of leftovers) {
      if (name !== best?.name) await rm(join(dir.path, name), { force: true });
    }
    await fsyncDir(dir.path);
  }

  async #decrypt(doc: Record<string, unknown>): Promise<Contents> {
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
      typeof p !== 'number'
    ) {
      throw this.#corrupt('has an unsupported or damaged encryption header');
    }
    if (!ACCEPTED_KDFS.some((accepted) => accepted.N === N && accepted.r === r && accepted.p === p)) {
      throw this.#corrupt(`asks for scrypt parameters tokend never writes (N=${N}, r=${r}, p=${p})`);
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
    return { entries: this.#parseEntries(payload.entries), generation: generationOf(payload), kdf };
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
    const generation = this.#generation + 1;
    const plain = {
      generation,
      entries: Object.fromEntries([...entries].map(([service, accounts]) => [service, Object.fromEntries(accounts)])),
    };
    let doc: unknown;
    if (this.#passphrase === undefined) {
      doc = { version: FORMAT_VERSION, ...plain };
    } else {
      // A file read with older parameters is re-encrypted with the current ones (and a new salt).
      if (this.#kdf === undefined || this.#kdf.N !== CURRENT_KDF.N || this.#kdf.r !== CURRENT_KDF.r || this.#kdf.p !== CURRENT_KDF.p) {
        this.#kdf = { salt: randomBytes(SALT_BYTES), ...CURRENT_KDF };
      }
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
    if (this.#dir === undefined) throw new StoreUnavailableError(`${this.path} was written before it was opened`, { hint: 'this is a bug in tokend; please report it' });
    await writeFileAtomic(this.#dir, this.#fileName, `${JSON.stringify(doc)}\n`);
    this.#generation = generation;
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

  #corrupt(what: string): StoreCorruptError {
    return new StoreCorruptError(`the secrets file ${this.path} ${what}; it was left untouched`, {
      hint: `move it aside (mv ${shellQuote(this.path)} ${shellQuote(`${this.path}.bad`)}) and run \`tokend login\` again`,
    });
  }
}

function scryptAsync(password: BinaryLike, salt: BinaryLike, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, options, (err, key) => (err === null ? resolve(key) : reject(err)));
  });
}

function decodeBase64(value: unknown, length?: number): Buffer | undefined {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return undefined;
  const bytes = Buffer.from(value, 'base64');
  return length === undefined || bytes.length === length ? bytes : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Files written before generations were recorded count as generation 0. */
function generationOf(doc: Record<string, unknown>): number {
  return Number.isSafeInteger(doc.generation) && (doc.generation as number) >= 0 ? (doc.generation as number) : 0;
}
