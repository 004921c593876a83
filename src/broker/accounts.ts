import { AccountNotFoundError, NotLoggedInError, StoreUnavailableError } from '../errors.js';
import type { Logger } from '../log.js';
import { accountEntry, STORE_SERVICE, type SecretStore } from '../store/secret-store.js';
import { parseAccount, serializeAccount, type Account } from './account.js';
import { SerialQueue } from './single-flight.js';

export const DEFAULT_ACCOUNT = 'default';

export interface MoveResult {
  /** Entry names of the records now in the new store. */
  moved: string[];
  /** Records the old store still holds because deleting them failed. */
  leftovers: string[];
}

export interface UnreadableRecord {
  entry: string;
  problem: string;
}

/**
 * The accounts the store holds, loaded once at start and written through on every change. The
 * default account is the one the user last made the default; a login never changes it by itself.
 */
export class AccountRegistry {
  private readonly accounts = new Map<string, Account>();
  private readonly unreadable: UnreadableRecord[] = [];
  private readonly writeQueues = new Map<string, SerialQueue>();
  /** Set while the records move to another store: writes wait for it, then go to the new store. */
  private moving: Promise<unknown> | undefined;
  /** A `tokend store migrate` is running (its probe, copy and clean-up together): one at a time. */
  private migrating = false;
  /** Writes under way; a move starts once they are done. */
  private activeWrites = 0;
  private writesDone: (() => void) | undefined;

  constructor(
    private store: SecretStore,
    private readonly logger: Logger,
  ) {}

  get secretStore(): SecretStore {
    return this.store;
  }

  /**
   * Moves every record (unreadable ones too, as they are) to `target`: copied, each read back and
   * compared, then `commit` (which records the new store), and only then deleted from the old store.
   * Writes wait meanwhile, and go to `target` after. A failure before the commit leaves everything
   * where it was; after it, the records are in `target`, and copies the old store could not delete
   * are reported, never both deleted.
   */
  /**
   * Runs one store migration (a move or a clean-up) at a time: two overlapping ones could move a
   * store onto itself, or clean up against a store that is being replaced, and delete the only copy.
   */
  async migration<T>(work: () => Promise<T>): Promise<T> {
    if (this.migrating) {
      throw new StoreUnavailableError('a move of the accounts to another store is already in progress', {
        hint: 'wait for it to finish, then run `tokend status`',
      });
    }
    this.migrating = true;
    try {
      return await work();
    } finally {
      this.migrating = false;
    }
  }

  async moveTo(target: SecretStore, commit: () => Promise<void>): Promise<MoveResult> {
    if (this.moving !== undefined) {
      throw new StoreUnavailableError('a move of the accounts to another store is already in progress', { hint: 'wait for it to finish, then run `tokend status`' });
    }
    const move = (async (): Promise<MoveResult> => {
      // Writes under way finish in the old store first; new ones wait for the move.
      if (this.activeWrites > 0) await new Promise<void>((resolve) => (this.writesDone = resolve));
      this.writesDone = undefined;
      const source = this.store;
      if (source.kind === target.kind) {
        // Two handles on one store: copying would change nothing, and deleting would delete everything.
        throw new StoreUnavailableError(`the accounts are already in ${source.description}; nothing was moved`, { hint: '`tokend status` shows the store' });
      }
      const records = await source.findCredentials(STORE_SERVICE);
      for (const { account: entry, password } of records) {
        await target.setPassword(STORE_SERVICE, entry, password);
        if ((await target.getPassword(STORE_SERVICE, entry)) !== password) {
          throw new StoreUnavailableError(`the copy of ${entry} in ${target.description} does not read back as written; nothing was moved`, {
            hint: `your accounts stay in ${source.description}; check the target store, then try again`,
          });
        }
      }
      await commit();
      this.store = target;
      const leftovers: string[] = [];
      for (const { account: entry } of records) {
        try {
          await source.deletePassword(STORE_SERVICE, entry);
        } catch (error) {
          leftovers.push(entry);
          this.logger.error({ event: 'store_move_cleanup_failed', entry, err: error }, 'a moved record could not be deleted from the old store');
        }
      }
      return { moved: records.map((record) => record.account), leftovers };
    })();
    this.moving = move.catch(() => undefined);
    try {
      return await move;
    } finally {
      this.moving = undefined;
    }
  }

  /**
   * Deletes the records of `other` (a store a move left behind) that this store holds identically;
   * anything that differs is kept and reported.
   */
  async deleteCopiesIn(other: SecretStore): Promise<{ deleted: string[]; differing: string[] }> {
    const current = this.store;
    if (current.kind === other.kind) {
      throw new StoreUnavailableError(`${other.description} is the store in use; no copy was deleted`, { hint: '`tokend status` shows the store' });
    }
    const deleted: string[] = [];
    const differing: string[] = [];
    for (const { account: entry, password } of await other.findCredentials(STORE_SERVICE)) {
      if ((await current.getPassword(STORE_SERVICE, entry)) === password) {
        await other.deletePassword(STORE_SERVICE, entry);
        deleted.push(entry);
      } else {
        differing.push(entry);
      }
    }
    return { deleted, differing };
  }

  async load(): Promise<void> {
    const credentials = await this.store.findCredentials(STORE_SERVICE);
    this.accounts.clear();
    this.unreadable.length = 0;
    for (const { account: entry, password } of credentials) {
      try {
        const account = parseAccount(entry, password);
        this.accounts.set(account.email, account);
      } catch (error) {
        // A damaged record is reported and left in place: deleting it could destroy the only copy.
        this.unreadable.push({ entry, problem: (error as Error).message });
        this.logger.error({ event: 'store_record_unreadable', entry, err: error }, 'a stored account record could not be read');
      }
    }
    await this.upgradeLegacyDefault();
  }

  /**
   * Records from before defaults were explicit: the oldest was the default. It is written down once,
   * so that logging it out later leaves no default rather than silently promoting another account.
   */
  private async upgradeLegacyDefault(): Promise<void> {
    const legacy = this.list().filter((account) => account.defaultSince === undefined);
    if (legacy.length === 0) return;
    const hasDefault = this.list().some((account) => typeof account.defaultSince === 'string');
    for (const account of legacy) {
      account.defaultSince = !hasDefault && account === legacy[0] ? account.createdAt : null;
      try {
        await this.save(account);
      } catch (error) {
        this.logger.error({ event: 'store_write_failed', account: account.email, err: error }, 'could not record the default account');
      }
    }
  }

  list(): Account[] {
    return [...this.accounts.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.email.localeCompare(b.email));
  }

  unreadableRecords(): readonly UnreadableRecord[] {
    return this.unreadable;
  }

  defaultAccount(): Account | undefined {
    let latest: Account | undefined;
    for (const account of this.accounts.values()) {
      if (typeof account.defaultSince !== 'string') continue;
      if (latest === undefined || account.defaultSince > (latest.defaultSince as string)) latest = account;
    }
    return latest;
  }

  find(email: string): Account | undefined {
    return this.accounts.get(email.toLowerCase());
  }

  /** `default` or an email → the account, or an error that says how to log in. */
  resolve(name: string): Account {
    if (name === DEFAULT_ACCOUNT) {
      const account = this.defaultAccount();
      if (account !== undefined) return account;
      const known = this.list().map((a) => a.email);
      if (known.length > 0) {
        throw new NotLoggedInError(`no default account: tokend holds ${known.join(', ')}, and none is the default`, {
          hint: `run \`tokend default ${known[0]}\`, or name the account (\`--account ${known[0]}\`)`,
        });
      }
      throw new NotLoggedInError('not logged in: tokend holds no accounts', {
        hint: 'run `tokend login --client-secrets client_secrets.json --scopes cloud-platform`',
      });
    }
    const account = this.find(name);
    if (account === undefined) {
      const known = this.list().map((a) => a.email);
      throw new AccountNotFoundError(`not logged in as ${name}`, {
        hint:
          known.length === 0
            ? 'run `tokend login --client-secrets client_secrets.json --scopes cloud-platform`'
            : `logged-in accounts: ${known.join(', ')}; to add this one, run \`tokend login --client-secrets client_secrets.json\``,
      });
    }
    return account;
  }

  /**
   * Writes the account's record, then registers it. Writes for one email run one at a time, and an
   * account that was removed or replaced writes nothing (false): a refresh that finishes after a
   * logout or a new consent cannot bring the old record back.
   */
  save(account: Account): Promise<boolean> {
    return this.writing(() =>
      this.queueFor(account.email).run(async () => {
        if (account.removed) return false;
        const { service, account: entry } = accountEntry(account.email);
        await this.store.setPassword(service, entry, serializeAccount(account));
        this.accounts.set(account.email, account);
        return true;
      }),
    );
  }

  /** Every write to the store goes through here, so that a move sees none under way and none start. */
  private async writing<T>(write: () => Promise<T>): Promise<T> {
    while (this.moving !== undefined) await this.moving;
    // No await between the check and the count: a move that starts now sees this write.
    this.activeWrites++;
    try {
      return await write();
    } finally {
      this.activeWrites--;
      if (this.activeWrites === 0) this.writesDone?.();
    }
  }

  /** Stores `next` in place of `previous`; from now on `previous` cannot write. */
  async replace(next: Account, previous: Account | undefined): Promise<void> {
    if (previous !== undefined) {
      previous.removed = true;
      previous.generation++;
      next.generation = previous.generation + 1;
    }
    try {
      await this.save(next);
    } catch (error) {
      if (previous !== undefined) previous.removed = false;
      throw error;
    }
  }

  /** Deletes a record that could not be read (by its entry name); false when there is none. */
  async removeUnreadable(entry: string): Promise<boolean> {
    const index = this.unreadable.findIndex((record) => record.entry === entry);
    if (index === -1) return false;
    await this.writing(() => this.store.deletePassword(STORE_SERVICE, entry));
    this.unreadable.splice(index, 1);
    return true;
  }

  async remove(account: Account): Promise<void> {
    // Marked first, so that writes already queued for this account are skipped.
    account.removed = true;
    account.generation++;
    const { service, account: entry } = accountEntry(account.email);
    try {
      await this.writing(() => this.queueFor(account.email).run(() => this.store.deletePassword(service, entry)));
    } catch (error) {
      account.removed = false;
      throw error;
    }
    if (this.accounts.get(account.email) === account) this.accounts.delete(account.email);
  }

  private queueFor(email: string): SerialQueue {
    let queue = this.writeQueues.get(email);
    if (queue === undefined) {
      queue = new SerialQueue();
      this.writeQueues.set(email, queue);
    }
    return queue;
  }
}
