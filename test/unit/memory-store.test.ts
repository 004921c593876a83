import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MemoryStore } from '../../src/store/memory-store.js';

test('MemoryStore: set, get, find and delete', async () => {
  const store = new MemoryStore();
  assert.equal(store.kind, 'memory');
  assert.match(store.description, /lost when the daemon stops/);

  assert.equal(await store.getPassword('tokend', 'a@example.com'), null);
  assert.deepEqual(await store.findCredentials('tokend'), []);

  await store.setPassword('tokend', 'a@example.com', 'one');
  await store.setPassword('tokend', 'b@example.com', 'two');
  await store.setPassword('other', 'a@example.com', 'elsewhere');
  await store.setPassword('tokend', 'a@example.com', 'one-updated');

  assert.equal(await store.getPassword('tokend', 'a@example.com'), 'one-updated');
  assert.deepEqual(
    (await store.findCredentials('tokend')).sort((x, y) => x.account.localeCompare(y.account)),
    [
      { account: 'a@example.com', password: 'one-updated' },
      { account: 'b@example.com', password: 'two' },
    ],
  );
  assert.deepEqual(await store.findCredentials('other'), [{ account: 'a@example.com', password: 'elsewhere' }]);

  assert.equal(await store.deletePassword('tokend', 'a@example.com'), true);
  assert.equal(await store.deletePassword('tokend', 'a@example.com'), false);
  assert.equal(await store.deletePassword('nothing', 'a@example.com'), false);
  assert.equal(await store.getPassword('tokend', 'a@example.com'), null);
  assert.deepEqual(await store.findCredentials('tokend'), [{ account: 'b@example.com', password: 'two' }]);
});

test('MemoryStore: instances do not share secrets', async () => {
  const one = new MemoryStore();
  const two = new MemoryStore();
  await one.setPassword('tokend', 'a@example.com', 'x');
  assert.equal(await two.getPassword('tokend', 'a@example.com'), null);
});

test('MemoryStore: names that look like object keys are plain keys', async () => {
  const store = new MemoryStore();
  await store.setPassword('__proto__', 'constructor', 'x');
  assert.equal(await store.getPassword('__proto__', 'constructor'), 'x');
  assert.equal(await store.getPassword('tokend', 'toString'), null);
});
