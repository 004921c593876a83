import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ScopeSet } from '../../src/broker/scopes.js';
import { InvalidScopeError } from '../../src/errors.js';

const G = 'https://www.googleapis.com/auth/';

test('short names expand; identity scopes and URLs stay as written', () => {
  assert.deepEqual(ScopeSet.parse('bigquery, openid email,https://example.com/scope').scopes, [
    'email',
    'https://example.com/scope',
    `${G}bigquery`,
    'openid',
  ]);
});

test('commas and spaces separate; duplicates collapse; order does not matter', () => {
  const a = ScopeSet.parse('cloud-platform bigquery,bigquery');
  const b = ScopeSet.parse(`${G}bigquery ${G}cloud-platform`);
  assert.equal(a.key, b.key);
  assert.equal(a.size, 2);
});

test('Google identity aliases in a token response fold to the short names', () => {
  assert.deepEqual(ScopeSet.fromGranted(`openid ${G}userinfo.email ${G}bigquery`).scopes, ['email', `${G}bigquery`, 'openid']);
});

test('subset, missing and union', () => {
  const granted = ScopeSet.parse('bigquery,cloud-platform');
  assert.ok(ScopeSet.parse('bigquery').isSubsetOf(granted), 'ScopeSet.parse(\'bigquery\').isSubsetOf(granted)');
  assert.deepEqual(ScopeSet.parse('bigquery,devstorage.read_only').missingFrom(granted), [`${G}devstorage.read_only`]);
  assert.equal(granted.union(ScopeSet.parse('pubsub')).toShortList(), 'bigquery,cloud-platform,pubsub');
});

test('a subset check that passed once still checks the next set it is asked about', () => {
  const wanted = ScopeSet.parse('bigquery');
  const wide = ScopeSet.parse('bigquery,cloud-platform');
  assert.ok(wanted.isSubsetOf(wide), 'bigquery is inside bigquery,cloud-platform');
  assert.equal(wanted.isSubsetOf(ScopeSet.parse('pubsub')), false);
  assert.equal(wanted.isSubsetOf(ScopeSet.of([`${G}cloud-platform`])), false);
  assert.ok(wanted.isSubsetOf(wide), 'and again');
});

test('malformed scopes are refused with a clear message', () => {
  for (const bad of ['big query!', 'http://insecure.example/scope', 'https://x.example/s?q=1', 'a'.repeat(300)]) {
    assert.throws(() => ScopeSet.parse(bad), InvalidScopeError, bad);
  }
  assert.throws(() => ScopeSet.parse(Array.from({ length: 65 }, (_, i) => `s${i}`).join(',')), /too many scopes/);
});

test('granted scopes remember how the server wrote them, for sending back upstream', () => {
  const granted = ScopeSet.fromGranted(`openid ${G}userinfo.email ${G}bigquery`);
  assert.equal(granted.spelling('email'), `${G}userinfo.email`);
  assert.equal(granted.spelling(`${G}bigquery`), `${G}bigquery`);
  assert.deepEqual(granted.spelled, [`${G}userinfo.email`, `${G}bigquery`, 'openid']);
  // A caller may name the alias either way; both mean the granted scope.
  assert.ok(ScopeSet.parse(`${G}userinfo.email`).isSubsetOf(granted), 'ScopeSet.parse(`${G}userinfo.email`).isSubsetOf(granted)');
  assert.ok(ScopeSet.parse('email').isSubsetOf(granted), 'ScopeSet.parse(\'email\').isSubsetOf(granted)');
});
