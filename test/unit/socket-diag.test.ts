import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { diagRequest, readAnswer, socketDiag, type SocketDiag } from '../../src/net/socket-diag.js';
import { searchTables, tcpPeerUid, type TcpEnds } from '../../src/net/tcp-peer-uid.js';
import { OTHER_UID, startAsOtherUser, skipUnlessSecondUser } from '../helpers/second-user.js';

const linuxOnly = process.platform === 'linux' ? false : 'NETLINK_SOCK_DIAG is Linux only';

async function kernel(): Promise<SocketDiag> {
  const diag = await socketDiag();
  if (!('ownerOf' in diag)) throw new Error(diag.unavailable);
  return diag;
}

const servers = new Set<Server>();
after(() => {
  for (const server of servers) server.close();
});

/** A listener on `host`; `accepted()` is the server side of the next connection. */
async function listener(host: string) {
  const server = createServer();
  servers.add(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => new Promise<Socket>((resolve) => server.once('connection', resolve)),
  };
}

function endsOf(socket: Socket): TcpEnds {
  return { localAddress: socket.localAddress!, localPort: socket.localPort!, remoteAddress: socket.remoteAddress!, remotePort: socket.remotePort! };
}

function clientOf(ends: TcpEnds) {
  return [{ address: ends.remoteAddress, port: ends.remotePort }, { address: ends.localAddress, port: ends.localPort }] as const;
}

describe('the kernel socket lookup', { skip: linuxOnly }, () => {
  test('finds the client end of a loopback connection and its owner', async () => {
    const { port, accepted } = await listener('127.0.0.1');
    const server = accepted();
    const client = connect(port, '127.0.0.1');
    const ends = endsOf(await server);
    assert.deepEqual((await kernel()).ownerOf(...clientOf(ends)), { found: true, uid: process.getuid!() });
    client.destroy();
  });

  test('an IPv4 client of a dual-stack listener (::ffff:127.0.0.1) and an IPv6 one (::1)', async () => {
    const { port, accepted } = await listener('::');
    for (const host of ['127.0.0.1', '::1']) {
      const server = accepted();
      const client = connect(port, host);
      const ends = endsOf(await server);
      assert.equal(ends.remoteAddress, host === '::1' ? '::1' : '::ffff:127.0.0.1');
      assert.deepEqual((await kernel()).ownerOf(...clientOf(ends)), { found: true, uid: process.getuid!() }, host);
      client.destroy();
    }
  });

  test('a client that closed first (its socket in TIME_WAIT) is not found: it belongs to no process', async () => {
    const { port, accepted } = await listener('127.0.0.1');
    const server = accepted();
    const client = connect(port, '127.0.0.1');
    const socket = await server;
    const ends = endsOf(socket);
    socket.on('end', () => socket.end());
    const closed = new Promise((resolve) => client.on('close', resolve));
    client.end();
    await closed;
    assert.deepEqual((await kernel()).ownerOf(...clientOf(ends)), { found: false });
    assert.equal((await tcpPeerUid(ends)).known, false);
  });

  test('another local user\'s connection is theirs, by the kernel lookup and by the tables alike', { skip: skipUnlessSecondUser() }, async () => {
    const { port, accepted } = await listener('127.0.0.1');
    const server = accepted();
    const other = startAsOtherUser(
      `import { connect } from 'node:net'; connect(Number(process.argv[1]), '127.0.0.1', () => console.log('connected'));`,
      [String(port)],
    );
    try {
      const ends = endsOf(await server);
      assert.deepEqual((await kernel()).ownerOf(...clientOf(ends)), { found: true, uid: OTHER_UID });
      assert.deepEqual(await searchTables(ends), { known: true, uid: OTHER_UID });
    } finally {
      await other.stop();
    }
  });

  test('where the kernel lookup cannot be used, the owner comes from /proc/net/tcp', async () => {
    const { port, accepted } = await listener('127.0.0.1');
    const server = accepted();
    const client = connect(port, '127.0.0.1');
    const ends = endsOf(await server);
    const failing: SocketDiag = { ownerOf: () => ({ failed: 'a test' }) };
    for (const diag of [Promise.resolve({ unavailable: 'a test' }), Promise.resolve(failing)]) {
      assert.deepEqual(await tcpPeerUid(ends, 'linux', diag), { known: true, uid: process.getuid!() });
    }
    client.destroy();
  });
});

describe('the kernel\'s answers', () => {
  const local = { address: '127.0.0.1', port: 0xd431 };
  const remote = { address: '127.0.0.1', port: 8080 };
  const request = diagRequest(local, remote)!;

  /** An answer as the kernel writes it: nlmsghdr, then inet_diag_msg with the asked ends, `state` and `uid`. */
  function answerFor(state: number, uid: number, ends = request.subarray(24, 72)): Buffer {
    const answer = Buffer.alloc(16 + 72);
    answer.writeUInt32LE(answer.length, 0);
    answer.writeUInt16LE(20, 4);
    answer[16] = 2;
    answer[17] = state;
    ends.copy(answer, 20);
    answer.writeUInt32LE(uid, 16 + 64);
    return answer;
  }

  function errorAnswer(errno: number): Buffer {
    const answer = Buffer.alloc(36);
    answer.writeUInt16LE(2, 4);
    answer.writeInt32LE(-errno, 16);
    return answer;
  }

  test('the request names the client end as local, in network order', () => {
    assert.equal(request.readUInt16BE(24), 0xd431);
    assert.equal(request.readUInt16BE(26), 8080);
    assert.deepEqual([...request.subarray(28, 32)], [127, 0, 0, 1]);
    assert.deepEqual([...request.subarray(44, 48)], [127, 0, 0, 1]);
    assert.equal(request[16], 2, 'an IPv4 pair is asked as AF_INET');
    assert.equal(diagRequest({ address: '::ffff:127.0.0.1', port: 1 }, remote)![16], 2, 'IPv4-mapped too');
    assert.equal(diagRequest({ address: '::1', port: 1 }, { address: '::1', port: 2 })![16], 10);
    assert.equal(diagRequest({ address: 'not an address', port: 1 }, remote), undefined);
  });

  test('an established socket gives its uid; TIME_WAIT and LISTEN give nothing', () => {
    assert.deepEqual(readAnswer(answerFor(1, 1000), request), { found: true, uid: 1000 });
    assert.deepEqual(readAnswer(answerFor(8, 1000), request), { found: true, uid: 1000 }, 'CLOSE_WAIT is still a process\'s socket');
    assert.deepEqual(readAnswer(answerFor(6, 0), request), { found: false });
    assert.deepEqual(readAnswer(answerFor(10, 1000), request), { found: false });
  });

  test('no such socket is "not found"; any other error or an answer about another socket is a failure', () => {
    assert.deepEqual(readAnswer(errorAnswer(2), request), { found: false });
    assert.ok('failed' in readAnswer(errorAnswer(1), request), 'EPERM is a failure, not a missing socket');
    const otherEnds = Buffer.from(request.subarray(24, 72));
    otherEnds.writeUInt16BE(0xd432, 0);
    assert.ok('failed' in readAnswer(answerFor(1, 1000, otherEnds), request), 'an answer about another port is not believed');
    assert.ok('failed' in readAnswer(Buffer.alloc(8), request), 'a truncated answer is a failure');
  });
});
