/** TokendClient's HTTP exchange over a Unix socket, against node's own HTTP server and raw sockets that misbehave. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { createServer as createRawServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TokendClient } from '../../src/client/index.js';
import { exchange, ExchangeError, parseAnswer } from '../../src/client/unix-http.js';
import { DaemonUnreachableError, UpstreamUnavailableError } from '../../src/errors.js';

const LIMITS = { timeoutMs: 2_000, maxBytes: 64 * 1024 };

function socketPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'tokend-http-')), 's.sock');
}

async function listening<T extends Server>(server: T, path: string): Promise<T> {
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

async function closed(server: Server): Promise<void> {
  await new Promise((resolve) => server.close(resolve));
}

test('a request reaches node:http whole (method, path, headers, body, Connection: close) and the answer comes back', async () => {
  const path = socketPath();
  let seen: { method?: string; url?: string; headers: IncomingMessage['headers']; body: string } | undefined;
  const server = await listening(
    createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        seen = { method: request.method, url: request.url, headers: request.headers, body };
        response.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true,"é":1}');
      });
    }),
    path,
  );
  try {
    const answer = await exchange(path, { method: 'POST', path: '/tokend/v1/x?y=1', headers: { 'metadata-flavor': 'Google' }, body: '{"to":"é"}' }, LIMITS);
    assert.equal(answer.status, 201);
    assert.equal(answer.body.toString('utf8'), '{"ok":true,"é":1}');
    assert.equal(seen?.method, 'POST');
    assert.equal(seen?.url, '/tokend/v1/x?y=1');
    assert.equal(seen?.headers['metadata-flavor'], 'Google');
    assert.equal(seen?.headers.connection, 'close');
    assert.equal(seen?.headers.host, 'localhost');
    assert.equal(seen?.headers['content-length'], String(Buffer.byteLength('{"to":"é"}')));
    assert.equal(seen?.body, '{"to":"é"}');
  } finally {
    await closed(server);
  }
});

test('a chunked answer is put back together', async () => {
  const path = socketPath();
  const server = await listening(
    createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.write('{"a":');
      setImmediate(() => response.end('"b"}'));
    }),
    path,
  );
  try {
    const answer = await exchange(path, { method: 'GET', path: '/', headers: {} }, LIMITS);
    assert.equal(answer.body.toString(), '{"a":"b"}');
  } finally {
    await closed(server);
  }
});

/** A raw server that answers every connection with `reply` (or with nothing, when undefined) and closes. */
async function rawServer(path: string, reply: ((socket: Socket) => void) | undefined): Promise<Server> {
  return listening(
    createRawServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => reply?.(socket));
    }),
    path,
  );
}

async function failure(path: string, limits = LIMITS): Promise<ExchangeError> {
  const error = await exchange(path, { method: 'GET', path: '/', headers: {} }, limits).then(
    () => assert.fail('expected the exchange to fail'),
    (reason: unknown) => reason,
  );
  assert.ok(error instanceof ExchangeError, String(error));
  return error;
}

test('an answer cut short, one that is not HTTP, and a close without an answer are malformed', async () => {
  const cases: Array<[string, (socket: Socket) => void, RegExp]> = [
    ['cut short', (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"a":'), /cut short/],
    ['not HTTP', (socket) => socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'), /status line/],
    ['no answer', (socket) => socket.end(), /without an answer/],
    ['bad length', (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n'), /Content-Length/],
  ];
  for (const [name, reply, message] of cases) {
    const path = socketPath();
    const server = await rawServer(path, reply);
    try {
      const error = await failure(path);
      assert.equal(error.code, 'malformed', name);
      assert.match(error.message, message, name);
    } finally {
      await closed(server);
    }
  }
});

test('a server that never answers is given up on after the time limit, and an endless answer at the size limit', async () => {
  const silentPath = socketPath();
  const silent = await rawServer(silentPath, undefined);
  const floodPath = socketPath();
  const flood = await rawServer(floodPath, (socket) => {
    socket.write('HTTP/1.1 200 OK\r\n\r\n');
    const pour = () => {
      while (socket.writable && socket.write(Buffer.alloc(16 * 1024, 'x')));
      if (socket.writable) socket.once('drain', pour);
    };
    pour();
  });
  try {
    assert.equal((await failure(silentPath, { ...LIMITS, timeoutMs: 200 })).code, 'timeout');
    assert.equal((await failure(floodPath)).code, 'too-large');
  } finally {
    await Promise.all([closed(silent), closed(flood)]);
  }
});

test('no socket: ENOENT, which TokendClient reports as no daemon running', async () => {
  const path = socketPath();
  assert.equal((await failure(path)).code, 'ENOENT');
  await assert.rejects(new TokendClient({ socketPath: path, timeoutMs: 1_000 }).status(), (error: unknown) => {
    assert.ok(error instanceof DaemonUnreachableError, String(error));
    assert.match(error.message, /no tokend is running/);
    return true;
  });
});

test('TokendClient: a silent daemon is a time-out with the log to check, a foreign one is named as not tokend', async () => {
  const silentPath = socketPath();
  const silent = await rawServer(silentPath, undefined);
  const foreignPath = socketPath();
  const foreign = await rawServer(foreignPath, (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello'));
  try {
    await assert.rejects(new TokendClient({ socketPath: silentPath, timeoutMs: 200 }).status(), (error: unknown) => {
      assert.ok(error instanceof UpstreamUnavailableError, String(error));
      assert.match(error.message, /did not answer within/);
      return true;
    });
    await assert.rejects(new TokendClient({ socketPath: foreignPath, timeoutMs: 2_000 }).status(), (error: unknown) => {
      assert.ok(error instanceof DaemonUnreachableError, String(error));
      assert.match(error.message, /did not answer like tokend/);
      return true;
    });
  } finally {
    await Promise.all([closed(silent), closed(foreign)]);
  }
});

test('parseAnswer: without Content-Length the body runs to the close; header names are case-blind', () => {
  const plain = parseAnswer(Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{"error":1}'));
  assert.deepEqual([plain.status, plain.body.toString()], [404, '{"error":1}']);
  const sized = parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}trailing'));
  assert.equal(sized.body.toString(), '{}');
  const chunked = parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{"\r\n3;x=y\r\na":\r\n2\r\n1}\r\n0\r\n\r\n'));
  assert.equal(chunked.body.toString(), '{"a":1}');
  assert.throws(() => parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab')), /cut short/);
});
