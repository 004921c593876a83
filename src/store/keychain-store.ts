import { randomBytes } from 'node:crypto';
import { AsyncEntry, findCredentialsAsync, type EntryOptions } from '@napi-rs/keyring';
import { isTokendError, StoreTimeoutError, StoreUnavailableError, type TokendError } from '../errors.js';
import type { Credential, SecretStore } from './secret-store.js';

/**
 * The `keychain` store: the OS keychain through @napi-rs/keyring (2.x) AsyncEntry, never its keytar
 * shim. Every call is time-bounded, and library errors become StoreUnavailableError with a fixed
 * message: the library's own text is never passed on, because its debug formatting can include item
 * data.
 *
 * On Linux, an AsyncEntry built without options picks its store when it is constructed: the Secret
 * Service, or, when that is unreachable or does not answer, silently the kernel keyring (keyutils).
 * `setPassword` on such an entry puts the secret in the kernel keyring (not persistent, and not what
 * the user chose) and then reports AccessDenied. So every entry is pinned with
 * `{ linux: { store: 'secret-service' } }`: the constructor then throws instead of falling back
 * (checked with no bus, a refused socket, an unset address and a hung Secret Service: nothing lands
 * in /proc/keys). `findCredentialsAsync` takes no options; it only ever talks to the Secret Service
 * and rejects when there is none.
 *
 * The constructor is synchronous: it connects to the bus and opens a Secret Service session on the
 * main thread (~10 ms measured per entry). When the Secret Service is hung it blocks the event loop
 * for about 2 s before it throws "no reply", and when the bus daemon itself is hung, for longer than
 * 40 s. So on Linux, before it constructs an entry, this store first asks the Secret Service
 * something cheap with `findCredentialsAsync`, which runs on the libuv threadpool under this store's
 * time limit: a hung service then costs a StoreTimeoutError, not a frozen daemon. That check is about
 * liveness only; pinning alone keeps secrets out of the kernel keyring.
 */

export const DEFAULT_KEYCHAIN_TIMEOUT_MS = 5000;
/** Service under which `probe()` writes, reads and deletes a throwaway item. */
export const PROBE_SERVICE = 'tokend-probe';
const PROBE_ACCOUNT = 'probe';
/** After this many calls have timed out and are still running, fail fast instead of queueing more. */
const MAX_STUCK_CALLS = 2;

/** The slice of an @napi-rs/keyring AsyncEntry this store uses. */
export interface KeyringEntry {
  getPassword(signal?: AbortSignal | null): Promise<string | null | undefined>;
  setPassword(password: string, signal?: AbortSignal | null): Promise<void>;
  deleteCredential(signal?: AbortSignal | null): Promise<boolean>;
}

/** The library, as an injectable dependency (tests pass a fake). */
export interface KeyringBackend {
  /** Synchronous, like the library's constructor; may throw. */
  createEntry(service: string, account: string): KeyringEntry;
  findCredentials(service: string, signal?: AbortSignal): Promise<Credential[]>;
}

/**
 * The options every entry is built with: on Linux, pinned to the Secret Service, so that an
 * unavailable one makes the constructor throw instead of falling back to the kernel keyring. Other
 * platforms have one store; the library ignores the option there.
 */
export function keyringEntryOptions(platform: NodeJS.Platform): EntryOptions | undefined {
  return platform === 'linux' ? { linux: { store: 'secret-service' } } : undefined;
}

/** The real library, with the store pinned where the platform has more than one. */
export function napiKeyringBackend(platform: NodeJS.Platform = process.platform): KeyringBackend {
  const options = keyringEntryOptions(platform);
  return {
    createEntry: (service, account) => new AsyncEntry(service, account, options),
    findCredentials: (service, signal) => findCredentialsAsync(service, null, signal),
  };
}

export interface KeychainStoreOptions {
  /** Upper bound for every call, in ms. Default 5000. */
  timeoutMs?: number;
  /** For messages and hints, and whether the Secret Service liveness check runs. Default: this platform. */
  platform?: NodeJS.Platform;
  /** Default: @napi-rs/keyring. */
  backend?: KeyringBackend;
}

export type ProbeResult =
  | { ok: true; elapsedMs: number }
  | { ok: false; reason: string; error: TokendError; elapsedMs: number };

/** Why a keychain call failed, from the library error, without keeping any of its text. */
export type KeychainFailure =
  | 'unreachable'
  | 'no-reply'
  | 'no-keyring'
  | 'locked'
  | 'prompt-dismissed'
  | 'access-denied'
  | 'ambiguous'
  | 'bad-data'
  | 'failure';

const failureReasons: Record<KeychainFailure, string> = {
  unreachable: 'no Secret Service is reachable on the D-Bus session bus',
  'no-reply': 'the Secret Service did not reply (it may be hung)',
  'no-keyring': 'the Secret Service has no default keyring to keep secrets in',
  locked: 'the keyring is locked',
  'prompt-dismissed': 'the keyring is locked and the unlock prompt was dismissed (or could not be shown)',
  'access-denied': 'access to the keychain was denied',
  ambiguous: 'more than one keychain item matches this entry',
  'bad-data': 'a keychain item holds data that is not valid text',
  failure: 'the keychain reported an error',
};

export class KeychainStore implements SecretStore {
  readonly kind = 'keychain' as const;
  readonly description: string;
  readonly timeoutMs: number;
  readonly platform: NodeJS.Platform;

  readonly #backend: KeyringBackend;
  /**
   * Creating an entry connects to the bus and opens a session, synchronously (~10 ms measured, plus
   * ~10 ms for the liveness check); a get on a cached entry costs ~1 ms.
   */
  readonly #entries = new Map<string, Promise<KeyringEntry>>();
  /** Calls that timed out and have not returned: each holds a libuv threadpool thread. */
  #stuck = 0;

  constructor(options: KeychainStoreOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_KEYCHAIN_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new RangeError('timeoutMs must be positive');
    this.platform = options.platform ?? process.platform;
    this.#backend = options.backend ?? napiKeyringBackend(this.platform);
    this.description = keychainName(this.platform);
  }

  async getPassword(service: string, account: string): Promise<string | null> {
    return this.#withEntry(service, account, 'reading a secret', async (entry, signal) => {
      return (await entry.getPassword(signal)) ?? null;
    });
  }

  async setPassword(service: string, account: string, password: string): Promise<void> {
    await this.#withEntry(service, account, 'storing a secret', (entry, signal) => entry.setPassword(password, signal), true);
  }

  async deletePassword(service: string, account: string): Promise<boolean> {
    return this.#withEntry(service, account, 'deleting a secret', (entry, signal) => entry.deleteCredential(signal), true);
  }

  async findCredentials(service: string): Promise<Credential[]> {
    const found = await this.#call('listing secrets', this.timeoutMs, (signal) =>
      this.#backend.findCredentials(service, signal),
    );
    return found.map(({ account, password }) => ({ account, password }));
  }

  /**
   * Whether the keychain is reachable and usable: stores, reads back and deletes a throwaway item
   * under `tokend-probe`. Never throws; answers within `timeoutMs` (plus timer latency).
   */
  async probe(timeoutMs = this.timeoutMs): Promise<ProbeResult> {
    const started = performance.now();
    const deadline = started + timeoutMs;
    const left = () => Math.max(1, Math.round(deadline - performance.now()));
    const elapsedMs = () => Math.round(performance.now() - started);
    try {
      const nonce = randomBytes(16).toString('hex');
      const entry = await this.#entry(PROBE_SERVICE, PROBE_ACCOUNT, left);
      await this.#call('storing a test secret', left(), (signal) => entry.setPassword(nonce, signal));
      const read = await this.#call('reading a test secret', left(), (signal) => entry.getPassword(signal));
      await this.#call('deleting a test secret', left(), (signal) => entry.deleteCredential(signal));
      if (read !== nonce) {
        const error = new StoreUnavailableError(
          `${this.description} is not usable: a test secret read back differently than it was stored`,
          { hint: keychainHint(this.platform, 'failure') },
        );
        return { ok: false, reason: error.message, error, elapsedMs: elapsedMs() };
      }
      return { ok: true, elapsedMs: elapsedMs() };
    } catch (err) {
      const error =
        err instanceof StoreTimeoutError
          ? new StoreTimeoutError(`${this.description} did not answer within ${timeoutMs} ms`, {
              hint: timeoutHint(this.platform),
            })
          : err instanceof StoreUnavailableError
            ? err
            : this.#unavailable(err, 'probing');
      return { ok: false, reason: error.message, error, elapsedMs: elapsedMs() };
    }
  }

  async #withEntry<T>(
    service: string,
    account: string,
    what: string,
    run: (entry: KeyringEntry, signal: AbortSignal) => Promise<T>,
    writes = false,
  ): Promise<T> {
    // One limit for the whole operation, including the liveness check on a cache miss.
    const deadline = performance.now() + this.timeoutMs;
    const left = () => Math.max(1, Math.round(deadline - performance.now()));
    const entry = await this.#entry(service, account, left);
    try {
      return await this.#call(what, left(), (signal) => run(entry, signal), writes);
    } catch (err) {
      // A cached entry may hold a connection to a bus or keyring that has gone; rebuild it next time.
      if (err instanceof StoreUnavailableError) this.#entries.delete(entryKey(service, account));
      throw err;
    }
  }

  /** The cached entry, created on first use, after checking that the Secret Service answers. */
  #entry(service: string, account: string, timeoutMs: () => number): Promise<KeyringEntry> {
    const key = entryKey(service, account);
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = this.#createEntry(service, account, timeoutMs);
      this.#entries.set(key, entry);
      void entry.catch(() => this.#entries.delete(key));
    }
    return entry;
  }

  async #createEntry(service: string, account: string, timeoutMs: () => number): Promise<KeyringEntry> {
    if (this.platform === 'linux') {
      // Time-bounded, off the main thread: keeps a hung Secret Service from blocking the event loop
      // in the synchronous constructor below (see the comment at the top). Not needed to avoid the
      // kernel keyring: the entry is pinned.
      await this.#call('connecting', timeoutMs(), (signal) => this.#backend.findCredentials(PROBE_SERVICE, signal));
    }
    try {
      return this.#backend.createEntry(service, account);
    } catch (err) {
      throw this.#unavailable(err, 'connecting');
    }
  }

  /**
   * Runs one library call with a time limit; maps its errors. At the limit the call's AbortSignal is
   * aborted: the library then cancels a call that is still queued for a libuv threadpool thread (it
   * never runs, and rejects with an AbortError), but it does not interrupt one that is already
   * running, so a write that timed out may still happen when the keychain answers. Either way the
   * caller gets StoreTimeoutError at the limit, and the call counts as stuck until it settles.
   */
  async #call<T>(
    what: string,
    timeoutMs: number,
    run: (signal: AbortSignal) => Promise<T>,
    writes = false,
  ): Promise<T> {
    if (this.#stuck >= MAX_STUCK_CALLS) {
      throw new StoreTimeoutError(
        `${this.description} did not answer earlier calls, which are still waiting; not ${what} until they return`,
        { hint: timeoutHint(this.platform) },
      );
    }
    const controller = new AbortController();
    let pending: Promise<T>;
    try {
      pending = run(controller.signal);
    } catch (err) {
      throw this.#unavailable(err, what);
    }
    const timedOut = new StoreTimeoutError(
      `${this.description} did not answer within ${this.timeoutMs} ms (${what}${
        writes ? '; the change may still be applied when it answers' : ''
      })`,
      { hint: timeoutHint(this.platform) },
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.#stuck += 1;
        void pending.then(
          () => (this.#stuck -= 1),
          () => (this.#stuck -= 1),
        );
        // Settle as a timeout first: the AbortError of a cancelled call must not win the race.
        reject(timedOut);
        controller.abort(timedOut);
      }, timeoutMs);
    });
    try {
      return await Promise.race([pending, timeout]);
    } catch (err) {
      if (isTokendError(err)) throw err;
      if (controller.signal.aborted) throw timedOut;
      throw this.#unavailable(err, what);
    } finally {
      clearTimeout(timer);
    }
  }

  #unavailable(err: unknown, what: string): StoreUnavailableError {
    const kind = classifyKeyringError(err);
    const name = err instanceof Error ? err.name : typeof err;
    const code = (err as { code?: unknown } | null)?.code;
    const tag = typeof code === 'string' && /^\w{1,40}$/.test(code) ? `${name}/${code}` : name;
    // The library's error class and code are for the daemon log (details), not for the sentence.
    return new StoreUnavailableError(`${this.description}: ${what} failed: ${failureReasons[kind]}`, {
      hint: keychainHint(this.platform, kind),
      details: { keychainFailure: kind, libraryError: tag },
    });
  }
}

/**
 * Sorts a library error into a fixed kind by looking at its text; the text itself is never kept
 * (keyring's debug output for a bad-encoding error contains the item's bytes).
 */
export function classifyKeyringError(err: unknown): KeychainFailure {
  const text = err instanceof Error ? err.message : '';
  if (/no secret service provider|no dbus session|ServiceUnknown|NoServer|NameHasNoOwner|disconnected from D-Bus|No such file or directory|Connection refused|address is empty|Failed to connect|autolaunch|DBUS_SESSION_BUS_ADDRESS|Address does not contain/i.test(text)) {
    return 'unreachable';
  }
  // Before the others: libdbus's "no reply" text lists causes ("... security policy blocked ...").
  if (/Did not receive a reply|NoReply/i.test(text)) return 'no-reply';
  if (/prompt (was )?dismissed/i.test(text)) return 'prompt-dismissed';
  if (/no result found|NoSuchObject|no such collection/i.test(text)) return 'no-keyring';
  if (/locked/i.test(text)) return 'locked';
  if (/ambiguous/i.test(text)) return 'ambiguous';
  if (/bad ?encoding|BadDataFormat|utf-?8/i.test(text)) return 'bad-data';
  if (/AccessDenied|access denied|NoStorageAccess|Couldn't access platform storage|not allowed|denied/i.test(text)) {
    return 'access-denied';
  }
  return 'failure';
}

export function keychainName(platform: NodeJS.Platform): string {
  if (platform === 'darwin') return 'the macOS Keychain';
  if (platform === 'win32') return 'the Windows Credential Manager';
  return 'the Secret Service (org.freedesktop.secrets)';
}

/** What a person can do when the keychain is not usable, as an imperative ("start ..."). */
export function keychainRemedy(platform: NodeJS.Platform, kind: KeychainFailure = 'unreachable'): string {
  if (platform === 'darwin') return 'unlock the login keychain (security unlock-keychain)';
  if (platform === 'win32') return 'check that the Windows Credential Manager is available';
  if (kind === 'locked' || kind === 'prompt-dismissed' || kind === 'no-keyring') {
    return 'unlock (or create) the login keyring: log in to the desktop, or run `gnome-keyring-daemon --unlock`';
  }
  if (kind === 'no-reply') return 'restart the Secret Service (gnome-keyring-daemon), which did not answer';
  return 'start a Secret Service (gnome-keyring-daemon)';
}

export function keychainHint(platform: NodeJS.Platform, kind: KeychainFailure = 'unreachable'): string {
  return `${keychainRemedy(platform, kind)}, or run \`tokend serve --store file\``;
}

function timeoutHint(platform: NodeJS.Platform): string {
  if (platform === 'darwin' || platform === 'win32') return keychainHint(platform);
  return 'check that gnome-keyring-daemon (or another Secret Service) is running and unlocked, or run `tokend serve --store file`';
}

function entryKey(service: string, account: string): string {
  return JSON.stringify([service, account]);
}
