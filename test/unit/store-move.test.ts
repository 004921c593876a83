/**
 * Moving the accounts to another store (`tokend store migrate`): copy, read back, record, then delete;
 * whatever step fails, the accounts are in at least one store, never in none.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AccountRegistry } from '../../src/broker/accounts.js';
import { Broker } from '../../src/broker/broker.js';
import { ScopeSet } from '../../src/broker/scopes.js';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { Secret } from '../../src/secret.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { STORE_SERVICE, type SecretStore } from '../../src/store/secret-store.js';
import { fakeClient, FakeUpstream } from '../helpers/fake-upstream.js';

const BQ = 'https://www.googleapis.com/auth/bigquery';

/** Two accounts in a memory store, and a damaged record that must move as it is. */
async function setup() {
  const source = new MemoryStore();
  const accounts = new AccountRegistry(source, silentLogger());
  const upstream = new FakeUpstream();
  const broker = new Broker({ accounts, upstream, clock: new ManualClock(), logger: silentLogger() });
  for (const email of ['alice@example.com', 'bob@example.com']) {
    await broker.adoptConsent({ email, refreshToken: new Secret(`refresh-${email}`), granted: ScopeSet.of([BQ, 'openid', 'email']), client: fakeClient, clientFile: undefined });
  }
  await source.setPassword(STORE_SERVICE, 'damaged@example.com', '{not json');
  await accounts.load();
  return { source, accounts, broker, upstream };
}

async function contents(store: SecretStore): Promise<Record<string, string>> {
  return Object.fromEntries((await store.findCredentials(STORE_SERVICE)).map((c) => [c.account, c.password]));
}

/** A store of another kind than the memory store the accounts start in (a move goes between kinds). */
function keychainLike(): MemoryStore {
  return Object.defineProperty(new MemoryStore(), 'kind', { value: 'keychain' });
}

/** A store of another kind whose operations can be made to fail, or to lie on read-back. */
function faulty(fail: { set?: boolean; getReturns?: string; delete?: boolean } = {}) {
  const store = keychainLike();
  const set = store.setPassword.bind(store);
  const get = store.getPassword.bind(store);
  const del = store.deletePassword.bind(store);
  store.setPassword = (s, a, p) => (fail.set === true ? Promise.reject(new Error('disk full')) : set(s, a, p));
  store.getPassword = (s, a) => (fail.getReturns !== undefined ? Promise.resolve(fail.getReturns) : get(s, a));
  store.deletePassword = (s, a) => (fail.delete === true ? Promise.reject(new Error('locked')) : del(s, a));
  return store;
}

describe('moving the accounts to another store', () => {
  test('every record is copied as it is, verified, recorded, deleted from the old store; later writes go to the new one', async () => {
    const { source, accounts, broker } = await setup();
    const before = await contents(source);
    const target = keychainLike();
    const order: string[] = [];
    const result = await accounts.moveTo(target, async () => {
      order.push(`commit with ${Object.keys(await contents(target)).length} records in the target`);
    });
    assert.deepEqual(order, ['commit with 3 records in the target'], 'the commit comes after every copy');
    assert.deepEqual(await contents(target), before, 'byte for byte, the damaged record too');
    assert.deepEqual(await contents(source), {}, 'nothing is left in the old store');
    assert.deepEqual(result, { moved: ['alice@example.com', 'bob@example.com', 'damaged@example.com'], leftovers: [] });
    assert.equal(accounts.secretStore, target);
    await broker.setDefault('bob@example.com');
    assert.match((await target.getPassword(STORE_SERVICE, 'bob@example.com')) ?? '', /default_since/);
    assert.deepEqual(await contents(source), {}, 'the write went to the new store');
  });

  for (const [name, target, what] of [
    ['the target refuses a write', faulty({ set: true }), /disk full/],
    ['a copy does not read back as written', faulty({ getReturns: 'something else' }), /does not read back as written; nothing was moved/],
  ] as const) {
    test(`${name}: nothing is recorded, nothing deleted, the old store stays in use`, async () => {
      const { source, accounts } = await setup();
      const before = await contents(source);
      let committed = false;
      await assert.rejects(accounts.moveTo(target, () => Promise.resolve(void (committed = true))), what);
      assert.equal(committed, false);
      assert.deepEqual(await contents(source), before);
      assert.equal(accounts.secretStore, source);
    });
  }

  test('recording the new store fails: nothing is deleted and the old store stays in use', async () => {
    const { source, accounts } = await setup();
    const before = await contents(source);
    const target = keychainLike();
    await assert.rejects(accounts.moveTo(target, () => Promise.reject(new Error('config dir read-only'))), /config dir read-only/);
    assert.deepEqual(await contents(source), before);
    assert.equal(accounts.secretStore, source);
  });

  test('the old store cannot delete its copies: the move stands, and the copies are reported', async () => {
    const source = faulty({ delete: true });
    const accounts = new AccountRegistry(source, silentLogger());
    await source.setPassword(STORE_SERVICE, 'a@example.com', 'record');
    const target = new MemoryStore();
    const result = await accounts.moveTo(target, () => Promise.resolve());
    assert.deepEqual(result.leftovers, ['a@example.com']);
    assert.equal(await target.getPassword(STORE_SERVICE, 'a@example.com'), 'record');
    assert.equal(accounts.secretStore, target);
    const cleaned = await accounts.deleteCopiesIn(keychainLike());
    assert.deepEqual(cleaned, { deleted: [], differing: [] });
  });

  test('a write that arrives during the move waits, then lands in the new store only', async () => {
    const { source, accounts, broker, upstream } = await setup();
    upstream.rotate = true;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const target = keychainLike();
    const moving = accounts.moveTo(target, () => held);
    // A refresh rotates the refresh token while the move waits on its commit.
    const token = broker.getToken({ account: 'alice@example.com', scopes: ScopeSet.parse('bigquery') });
    // Until the refresh has its answer and is waiting to store the rotated token, then a few turns more.
    for (let turn = 0; upstream.refreshCalls.length === 0; turn++) {
      assert.ok(turn < 10_000, 'the refresh reached the upstream');
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.doesNotMatch((await source.getPassword(STORE_SERVICE, 'alice@example.com')) ?? '', /refresh-rotated/, 'not written to the old store');
    release();
    await moving;
    await token;
    assert.match((await target.getPassword(STORE_SERVICE, 'alice@example.com')) ?? '', /refresh-rotated-1/, 'the rotated token is in the new store');
    assert.equal(await source.getPassword(STORE_SERVICE, 'alice@example.com'), null);
  });

  test('regression: a second move while one runs is refused, and a move onto the store in use deletes nothing', async () => {
    const { source, accounts } = await setup();
    const before = await contents(source);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const first = accounts.migration(() => held);
    await assert.rejects(accounts.migration(() => Promise.resolve()), /already in progress/);
    release();
    await first;
    // Another handle on the same kind of store (a second keychain object, or a second FileStore on one file).
    const sameKind = Object.assign(new MemoryStore(), { deletePassword: () => Promise.reject(new Error('must not be called')) });
    await assert.rejects(accounts.moveTo(sameKind, () => Promise.resolve()), /already in memory/);
    await assert.rejects(accounts.deleteCopiesIn(source), /is the store in use; no copy was deleted/);
    assert.deepEqual(await contents(source), before, 'nothing was deleted');
  });

  test('left-over copies are deleted only where the new store holds the same record', async () => {
    const { accounts, source } = await setup();
    const leftovers = keychainLike();
    await leftovers.setPassword(STORE_SERVICE, 'alice@example.com', (await source.getPassword(STORE_SERVICE, 'alice@example.com'))!);
    await leftovers.setPassword(STORE_SERVICE, 'bob@example.com', 'an older record');
    assert.deepEqual(await accounts.deleteCopiesIn(leftovers), { deleted: ['alice@example.com'], differing: ['bob@example.com'] });
    assert.deepEqual(Object.keys(await contents(leftovers)), ['bob@example.com']);
  });
});
