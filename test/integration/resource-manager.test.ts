/**
 * The Resource Manager client over real TCP: what it sends, what it takes from an answer, and that
 * every failure is bounded in time and carries none of the upstream's text.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { isTokendError } from '../../src/errors.js';
import { ResourceManager } from '../../src/oauth/resource-manager.js';
import { Secret } from '../../src/secret.js';

const servers: Array<ReturnType<typeof createServer>> = [];
after(() => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const TOKEN = new Secret('ya29.the-access-token');
const UPSTREAM_TEXT = 'upstream text that must not be shown';

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string; hint: string | undefined }> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isTokendError(error), `a tokend error, not ${String(error)}`);
    assert.doesNotMatch(error.message + (error.hint ?? ''), new RegExp(`${UPSTREAM_TEXT}|ya29`));
    return { code: error.code, message: error.message, hint: error.hint };
  }
  assert.fail('expected a failure');
}

describe('ResourceManager.projectNumber', () => {
  test('GET /v1/projects/ID with the bearer token; the projectNumber of the answer', async () => {
    const seen: Array<{ method: string; url: string; authorization: string | undefined }> = [];
    const base = await serve((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ projectNumber: '123456789012', projectId: 'my-proj' }));
    });
    assert.equal(await new ResourceManager({ baseUrl: base }).projectNumber('my-proj', TOKEN), '123456789012');
    assert.deepEqual(seen, [{ method: 'GET', url: '/v1/projects/my-proj', authorization: 'Bearer ya29.the-access-token' }]);
  });

  test('a base URL with a path keeps it; a project id is escaped into one path segment', async () => {
    const seen: string[] = [];
    const base = await serve((req, res) => {
      seen.push(req.url ?? '');
      res.writeHead(200).end('{"projectNumber":"7"}');
    });
    assert.equal(await new ResourceManager({ baseUrl: `${base}/relay` }).projectNumber('a/../b', TOKEN), '7');
    assert.deepEqual(seen, ['/relay/v1/projects/a%2F..%2Fb']);
  });

  test('403 and 404: rejected, naming the project and how to set the number', async () => {
    for (const status of [403, 404]) {
      const base = await serve((_req, res) => res.writeHead(status).end(JSON.stringify({ error: { message: UPSTREAM_TEXT } })));
      const error = await failure(new ResourceManager({ baseUrl: base }).projectNumber('my-proj', TOKEN));
      assert.equal(error.code, 'upstream_rejected');
      assert.match(error.message, new RegExp(`does not show project my-proj to this account \\(HTTP ${status}\\)`));
      assert.match(error.hint ?? '', /"projectNumber".*TOKEND_PROJECT_NUMBER/);
    }
  });

  test('5xx and 429: unavailable (asked again later)', async () => {
    for (const status of [500, 503, 429]) {
      const base = await serve((_req, res) => res.writeHead(status).end(UPSTREAM_TEXT));
      const error = await failure(new ResourceManager({ baseUrl: base }).projectNumber('p', TOKEN));
      assert.equal(error.code, 'upstream_unavailable', String(status));
      assert.match(error.message, new RegExp(`answered HTTP ${status}$`));
    }
  });

  test('an answer without a usable number is refused: missing, not digits, not a string, not JSON, huge', async () => {
    const bodies = ['{}', '{"projectNumber":"12a"}', '{"projectNumber":12}', 'not json', `{"projectNumber":"1","pad":"${'x'.repeat(70_000)}"}`];
    for (const body of bodies) {
      const base = await serve((_req, res) => res.writeHead(200).end(body));
      const error = await failure(new ResourceManager({ baseUrl: base }).projectNumber('p', TOKEN));
      assert.equal(error.code, 'upstream_rejected', body.slice(0, 30));
      assert.match(error.message, /without a project number/);
    }
  });

  test('a server that never answers: given up after the time limit', async () => {
    const base = await serve(() => {
      // never answers
    });
    const started = Date.now();
    const error = await failure(new ResourceManager({ baseUrl: base, timeoutMs: 300 }).projectNumber('p', TOKEN));
    assert.equal(error.code, 'upstream_unavailable');
    assert.match(error.message, /did not answer within 300 ms/);
    assert.ok(Date.now() - started < 5_000, 'bounded');
  });

  test('nothing listening: could not be reached', async () => {
    const base = await serve(() => undefined);
    const port = new URL(base).port;
    await new Promise<void>((resolve) => servers.pop()!.close(() => resolve()));
    const error = await failure(new ResourceManager({ baseUrl: `http://127.0.0.1:${port}` }).projectNumber('p', TOKEN));
    assert.match(error.message, /could not be reached/);
  });

  test('a redirect is not followed (the token would go with it)', async () => {
    let followed = false;
    const elsewhere = await serve((_req, res) => {
      followed = true;
      res.writeHead(200).end('{"projectNumber":"1"}');
    });
    const base = await serve((_req, res) => res.writeHead(302, { location: `${elsewhere}/v1/projects/p` }).end());
    await failure(new ResourceManager({ baseUrl: base }).projectNumber('p', TOKEN));
    assert.equal(followed, false);
  });
});
