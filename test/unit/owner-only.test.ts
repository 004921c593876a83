import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { acceptOwnerOnly, createConnectionBudget, daemonConnectionBudget, RESERVED_FDS, type OwnerOnlyGuard } from '../../src/net/owner-only.js';
import { endpointKey, findOwner, tcpPeerUid, type PeerUid } from '../../src/net/tcp-peer-uid.js';

// Two lines of a little-endian /proc/net/tcp: the server's accepted socket (uid 0) and the client's (uid 1000).
const TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0
   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 102 1 0
`;
const TABLE6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:D432 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 103 1 0
   1: 00000000000000000000000001000000:D433 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1002        0 104 1 0
`;

describe('tcp peer uid', () => {
  test('the client socket is the line whose local end is the peer and remote end is us', () => {
    const us = endpointKey('127.0.0.1', 0x1f90)!;
    assert.equal(findOwner(TABLE, endpointKey('127.0.0.1', 0xd431)!, us), 1000);
    assert.equal(findOwner(TABLE, us, endpointKey('127.0.0.1', 0xd431)!), 0);
    assert.equal(findOwner(TABLE, endpointKey('127.0.0.1', 0xd499)!, us), undefined);
  });

  test('regression: a TIME_WAIT socket with the same ends (a reused port) does not stand in for the live one', () => {
    const us = endpointKey('127.0.0.1', 0x1f90)!;
    // Before and after the live one: neither a first nor a last match may be the dead socket.
    const dead = '   2: 0100007F:D431 0100007F:1F90 06 00000000:00000000 03:00000F82 00000000     0        0 0 3 0';
    const [header, ...rows] = TABLE.split('\n');
    for (const table of [[header, dead, ...rows], [header, ...rows.filter(Boolean), dead]]) {
      assert.equal(findOwner(table.join('\n'), endpointKey('127.0.0.1', 0xd431)!, us), 1000);
    }
  });

  test('IPv4-mapped and IPv6 loopback addresses in tcp6', () => {
    assert.equal(findOwner(TABLE6, endpointKey('::ffff:127.0.0.1', 0xd432)!, endpointKey('127.0.0.1', 0x1f90)!), 1001);
    assert.equal(findOwner(TABLE6, endpointKey('::1', 0xd433)!, endpointKey('0:0:0:0:0:0:0:1', 0x1f90)!), 1002);
  });

  test('a real loopback connection is found, owned by this process\'s uid', { skip: process.platform !== 'linux' }, async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const client = connect((server.address() as { port: number }).port, '127.0.0.1');
    const socket = await accepted;
    const peer = await tcpPeerUid({
      localAddress: socket.localAddress!,
      localPort: socket.localPort!,
      remoteAddress: socket.remoteAddress!,
      remotePort: socket.remotePort!,
    });
    assert.deepEqual(peer, { known: true, uid: process.getuid!() });
    client.destroy();
    socket.destroy();
    server.close();
  });

  test('elsewhere than Linux the owner is unknown, and says why', async () => {
    const peer = await tcpPeerUid({ localAddress: '127.0.0.1', localPort: 1, remoteAddress: '127.0.0.1', remotePort: 2 }, 'darwin');
    assert.equal(peer.known, false);
    assert.equal(!peer.known && peer.supported, false);
  });
});

describe('owner-only listener', () => {
  // Closed after each test whatever happened, so a failing assertion cannot leave the file running.
  const opened = new Set<{ server: Server; guard: OwnerOnlyGuard }>();
  afterEach(async () => {
    for (const { server, guard } of opened) {
      guard.closeAll();
      await new Promise((resolve) => server.close(resolve));
    }
    opened.clear();
  });

  async function listen(lookup: () => Promise<PeerUid>, options: { maxConnections?: number; budget?: number; whenUnsupported?: 'accept' | 'refuse' } = {}) {
    // Answers only what it reads, as an HTTP server does: a paused connection gets nothing.
    const server = createServer((socket) => socket.once('data', () => socket.end('hello')));
    const budget = createConnectionBudget(options.budget ?? 100);
    const guard = acceptOwnerOnly(server, {
      listener: 'test',
      maxConnections: options.maxConnections ?? 8,
      budget,
      whenUnsupported: options.whenUnsupported ?? 'refuse',
      ownerUid: 1000,
      lookup,
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    opened.add({ server, guard });
    const port = (server.address() as { port: number }).port;
    const exchange = () =>
      new Promise<string>((resolve) => {
        let text = '';
        const socket = connect(port, '127.0.0.1', () => socket.write('hi'));
        socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
        socket.on('close', () => resolve(text));
        socket.on('error', () => undefined);
      });
    return { server, guard, budget, exchange, close: () => new Promise((resolve) => server.close(resolve)) };
  }

  test('the owner is served; another uid is dropped before anything is read', async () => {
    const owner = await listen(() => Promise.resolve({ known: true, uid: 1000 }));
    assert.equal(await owner.exchange(), 'hello');
    await owner.close();
    const other = await listen(() => Promise.resolve({ known: true, uid: 65534 }));
    assert.equal(await other.exchange(), '');
    assert.equal(other.guard.refused, 1);
    await other.close();
  });

  test('an owner that cannot be found is refused; an unsupported platform follows whenUnsupported', async () => {
    const gone = await listen(() => Promise.resolve({ known: false, supported: true, reason: 'closed' }), { whenUnsupported: 'accept' });
    assert.equal(await gone.exchange(), '');
    await gone.close();
    const mac = await listen(() => Promise.resolve({ known: false, supported: false, reason: 'darwin' }), { whenUnsupported: 'accept' });
    assert.equal(await mac.exchange(), 'hello');
    await mac.close();
    const strict = await listen(() => Promise.resolve({ known: false, supported: false, reason: 'darwin' }));
    assert.equal(await strict.exchange(), '');
    await strict.close();
  });

  test('connections beyond the daemon-wide budget are dropped, and released ones are reusable', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const listener = await listen(() => held.then(() => ({ known: true, uid: 1000 })), { budget: 2 });
    const answers = Promise.all([listener.exchange(), listener.exchange(), listener.exchange()]);
    while (listener.guard.refused === 0) await new Promise((resolve) => setImmediate(resolve));
    release();
    assert.deepEqual((await answers).sort(), ['', 'hello', 'hello'], 'one of three is over budget');
    while (listener.budget.inUse > 0) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await listener.exchange(), 'hello', 'released connections give their place back');
    await listener.close();
  });

  test('the daemon budget leaves RESERVED_FDS free under any fd limit', () => {
    assert.equal(daemonConnectionBudget(1024).limit, 512);
    assert.equal(daemonConnectionBudget(512).limit, 512 - RESERVED_FDS);
    assert.equal(daemonConnectionBudget(200).limit, 16);
  });
});
