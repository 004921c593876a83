/** TokendAuthClient: a google-auth-library AuthClient whose tokens come from the daemon. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, test } from 'node:test';
import { AuthClient } from 'google-auth-library';
import { TokendAuthClient } from '../../src/client/index.js';
import { ManualClock } from '../../src/clock.js';
import { ConsentRequiredError } from '../../src/errors.js';
import type { TokenResponse } from '../../src/protocol.js';

/** A daemon stand-in for the socket client: numbered tokens of `lifetime` seconds, calls counted. */
function fakeDaemon(lifetime = 3600) {
  const calls: Array<{ scopes?: string; account?: string }> = [];
  let failWith: Error | undefined;
  return {
    calls,
    fail: (error: Error | undefined) => (failWith = error),
    client: {
      async getToken(ask: { scopes?: string; account?: string }): Promise<TokenResponse> {
        calls.push(ask);
        await new Promise<void>((resolve) => setImmediate(resolve)); // an answer takes a turn of the event loop
        if (failWith !== undefined) throw failWith;
        return { access_token: `token-${calls.length}`, expires_in: lifetime, token_type: 'Bearer', account: 'alice@example.com', scopes: [] };
      },
    },
  };
}

describe('TokendAuthClient', () => {
  test('is an AuthClient; asks the daemon for exactly the scopes and account it was given', async () => {
    const daemon = fakeDaemon();
    const auth = new TokendAuthClient({ scopes: ['bigquery', 'devstorage.read_only'], account: 'alice@example.com', client: daemon.client });
    assert.ok(auth instanceof AuthClient, 'usable as authClient in every Google Cloud Node client');
    assert.deepEqual(await auth.getAccessToken(), { token: 'token-1' });
    assert.deepEqual(daemon.calls, [{ scopes: 'bigquery,devstorage.read_only', account: 'alice@example.com' }]);
    assert.equal((await auth.getRequestHeaders()).get('authorization'), 'Bearer token-1');
    assert.equal(await auth.getAccount(), 'alice@example.com');
  });

  test('a token is reused until 300 s before it expires, then a new one is asked for', async () => {
    const daemon = fakeDaemon(3600);
    const clock = new ManualClock();
    const auth = new TokendAuthClient({ client: daemon.client, clock });
    await auth.getAccessToken();
    clock.advance((3600 - 301) * 1000);
    assert.deepEqual(await auth.getAccessToken(), { token: 'token-1' }, 'reused with 301 s left');
    clock.advance(2_000);
    assert.deepEqual(await auth.getAccessToken(), { token: 'token-2' }, 'renewed with 299 s left');
    assert.equal(daemon.calls.length, 2);
  });

  test('concurrent calls share one request to the daemon', async () => {
    const daemon = fakeDaemon();
    const auth = new TokendAuthClient({ client: daemon.client });
    const tokens = await Promise.all(Array.from({ length: 50 }, () => auth.getAccessToken()));
    assert.equal(daemon.calls.length, 1);
    assert.deepEqual(new Set(tokens.map((t) => t.token)), new Set(['token-1']));
  });

  test('the daemon\'s errors arrive as tokend\'s classes, code and hint intact; the next call asks again', async () => {
    const daemon = fakeDaemon();
    const auth = new TokendAuthClient({ client: daemon.client });
    daemon.fail(new ConsentRequiredError('alice@example.com must consent again', { hint: 'run `tokend login ...`' }));
    await assert.rejects(auth.getAccessToken(), (error: unknown) => error instanceof ConsentRequiredError && error.code === 'consent_required' && error.hint === 'run `tokend login ...`');
    daemon.fail(undefined);
    assert.deepEqual(await auth.getAccessToken(), { token: 'token-2' });
  });

  test('request() sends the token, and a 401 (revoked meanwhile) is retried once with a new token', async () => {
    const daemon = fakeDaemon();
    const auth = new TokendAuthClient({ client: daemon.client });
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization ?? '');
      res.writeHead(seen.length === 1 ? 401 : 200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as { port: number };
      const response = await auth.request<{ ok: boolean }>({ url: `http://127.0.0.1:${port}/x`, retry: false });
      assert.deepEqual(response.data, { ok: true });
      assert.deepEqual(seen, ['Bearer token-1', 'Bearer token-2']);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
