import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { limitConnections } from '../../src/net/connection-limit.js';

/** An HTTP server on a Unix socket whose answers wait until released, capped at `max` connections. */
async function server(max: number) {
  const held: ServerResponse[] = [];
  const http = createServer((request, response) => {
    if (request.url === '/hold') held.push(response);
    else response.end('ok');
  });
  limitConnections(http, { max, listener: 'test' });
  const path = join(mkdtempSync(join(tmpdir(), 'tokend-limit-')), 's.sock');
  await new Promise<void>((resolve) => http.listen(path, resolve));
  const open: Socket[] = [];
  const connection = async (request?: string) => {
    const socket = connect(path);
    socket.on('error', () => undefined);
    open.push(socket);
    const state = { closed: false, answer: '' };
    socket.on('close', () => (state.closed = true));
    socket.on('data', (chunk: Buffer) => (state.answer += chunk.toString()));
    await new Promise((resolve) => socket.once('connect', resolve));
    if (request !== undefined) socket.write(`GET ${request} HTTP/1.1\r\nhost: x\r\n\r\n`);
    await sleep(30);
    return state;
  };
  return {
    connection,
    releaseAll: () => held.splice(0).forEach((response) => response.end('released')),
    close: async () => {
      for (const socket of open) socket.destroy();
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    },
  };
}

test('at the cap, the connection idle longest is closed to make room, and the new one is served', async () => {
  const s = await server(3);
  try {
    const first = await s.connection();
    const second = await s.connection();
    const third = await s.connection('/');
    const fourth = await s.connection('/');
    await sleep(30);
    assert.equal(first.closed, true, 'the oldest idle connection made room');
    assert.equal(second.closed, false);
    assert.equal(third.closed, false, 'one that was just used is idle for less long');
    assert.match(fourth.answer, /ok$/);
  } finally {
    await s.close();
  }
});

test('a connection with a request in flight is never the one closed; when all are busy, the new one is refused', async () => {
  const s = await server(2);
  try {
    const busy = await s.connection('/hold');
    const idle = await s.connection();
    const third = await s.connection('/');
    await sleep(30);
    assert.equal(busy.closed, false, 'the busy connection stays');
    assert.equal(idle.closed, true, 'the idle one made room');
    assert.match(third.answer, /ok$/);
    const alsoBusy = await s.connection('/hold');
    await sleep(30);
    assert.equal(third.closed, true, 'the idle one made room again');
    const refused = await s.connection('/');
    await sleep(30);
    assert.equal(refused.closed, true, 'every connection busy: the new one is refused');
    assert.equal(refused.answer, '');
    assert.equal(busy.closed || alsoBusy.closed, false, 'no busy connection was closed');
    s.releaseAll();
  } finally {
    await s.close();
  }
});
