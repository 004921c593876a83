/** The client's checks on the socket, before every connection, against real sockets and files. */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TokendClient } from '../../src/client/index.js';
import { DaemonUnreachableError } from '../../src/errors.js';
import { OTHER_GID, OTHER_UID } from '../helpers/second-user.js';

const root = process.getuid?.() === 0;

test('regression: a socket another user owns is refused, even inside a private directory of ours', { skip: root ? false : 'needs root to give a socket to another user' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tokend-client-'));
  chmodSync(dir, 0o700);
  const path = join(dir, 'tokend.sock');
  let answered = 0;
  const server = createServer((_req, res) => {
    answered++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"daemon":{}}');
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  try {
    const client = new TokendClient({ socketPath: path, timeoutMs: 2_000 });
    await client.status(); // ours: answered
    assert.equal(answered, 1);
    chownSync(path, OTHER_UID, OTHER_GID);
    await assert.rejects(client.status(), (error: unknown) => {
      assert.ok(error instanceof DaemonUnreachableError, `refused: ${String(error)}`);
      assert.match(error.message, /^refusing to talk to .*tokend\.sock: /);
      return true;
    });
    assert.equal(answered, 1, 'nothing was sent to the other user\'s socket');
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
