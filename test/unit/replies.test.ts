import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IssuedToken } from '../../src/broker/broker.js';
import { ScopeSet } from '../../src/broker/scopes.js';
import { Secret } from '../../src/secret.js';
import { tokenBody } from '../../src/server/replies.js';

const issued = (accessToken: Secret, expiresIn: number): IssuedToken => ({ account: 'alice@example.com', scopes: ScopeSet.parse('bigquery'), accessToken, expiresIn, cache: 'hit' });
const parsed = (body: string) => JSON.parse(body) as Record<string, unknown>;

test('a token body follows the token and its remaining life, however often it is asked for', () => {
  const first = new Secret('ya29.first"\\token');
  const second = new Secret('ya29.second');
  assert.deepEqual(parsed(tokenBody(issued(first, 3599))), { access_token: 'ya29.first"\\token', expires_in: 3599, token_type: 'Bearer' });
  assert.deepEqual(parsed(tokenBody(issued(first, 3599))), { access_token: 'ya29.first"\\token', expires_in: 3599, token_type: 'Bearer' });
  assert.equal(parsed(tokenBody(issued(first, 3598))).expires_in, 3598, 'a second later');
  assert.equal(parsed(tokenBody(issued(second, 3598))).access_token, 'ya29.second', 'another token with the same life left');
  assert.equal(parsed(tokenBody(issued(first, 3598))).access_token, 'ya29.first"\\token');
});
