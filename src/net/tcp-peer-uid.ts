import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { endianness } from 'node:os';
import { addressBytes, asIpv6 } from './ip-address.js';
import { socketDiag } from './socket-diag.js';

/** The two ends of an accepted TCP connection, as Node reports them on the server side. */
export interface TcpEnds {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

export type PeerUid =
  | { known: true; uid: number }
  /** `supported` is false where this platform cannot look owners up at all. */
  | { known: false; supported: boolean; reason: string };

/**
 * The client's socket is usually in the table of the listener's family; not always (an IPv4 client of a
 * dual-stack listener is in tcp, an AF_INET6 client of `::ffff:127.0.0.1` in tcp6): the other is read
 * on a miss.
 */
function tablesFor(localAddress: string): string[] {
  return isIPv4(localAddress) ? ['/proc/net/tcp', '/proc/net/tcp6'] : ['/proc/net/tcp6', '/proc/net/tcp'];
}
const littleEndian = endianness() === 'LE';

/**
 * Which local user owns the client end of a loopback TCP connection. On Linux the kernel knows each
 * socket's owner; the client's socket is the one whose local end is our peer and whose remote end is
 * us. It is asked for that one socket over netlink (socket-diag.ts); where that cannot be used, the
 * same answer is searched for in /proc/net/tcp and tcp6, which costs the kernel a walk over every TCP
 * socket (milliseconds, tens of them with many in TIME_WAIT). Elsewhere (macOS) there is no such table
 * and the answer is unknown. A connection that closed before the lookup is unknown too.
 */
export async function tcpPeerUid(ends: TcpEnds, platform = process.platform, kernel = socketDiag(platform)): Promise<PeerUid> {
  if (platform !== 'linux') return { known: false, supported: false, reason: `the owner of a TCP peer cannot be looked up on ${platform}` };
  const diag = await kernel;
  if ('ownerOf' in diag) {
    const owner = diag.ownerOf({ address: ends.remoteAddress, port: ends.remotePort }, { address: ends.localAddress, port: ends.localPort });
    if ('found' in owner) return owner.found ? { known: true, uid: owner.uid } : { known: false, supported: true, reason: CLOSED };
    // Otherwise the tables below give the same answer, only slower.
  }
  return searchTables(ends);
}

const CLOSED = 'the client socket is not in the kernel tables (it closed)';

/** The likely table is read first, and concurrent lookups share reads. */
export async function searchTables(ends: TcpEnds): Promise<PeerUid> {
  const peer = endpointKey(ends.remoteAddress, ends.remotePort);
  const self = endpointKey(ends.localAddress, ends.localPort);
  if (peer === undefined || self === undefined) return { known: false, supported: true, reason: 'the connection has no address' };
  let readable = 0;
  for (const table of tablesFor(ends.localAddress)) {
    let text: string;
    try {
      text = await freshTable(table);
    } catch {
      continue; // tcp6 is absent when IPv6 is disabled
    }
    readable++;
    const uid = findOwner(text, peer, self);
    if (uid !== undefined) return { known: true, uid };
  }
  return { known: false, supported: true, reason: readable === 0 ? 'the kernel socket tables (/proc/net/tcp) are not readable' : CLOSED };
}

const reads = new Map<string, { inFlight?: Promise<string>; next?: Promise<string> }>();

/**
 * The table in `path`, read after this call began: a read already in flight may predate the
 * connection, so a lookup that arrives during one waits for the next. Lookups that arrive together
 * share one read, so a burst of connections costs a few walks of the table, not one each.
 */
function freshTable(path: string): Promise<string> {
  let state = reads.get(path);
  if (state === undefined) reads.set(path, (state = {}));
  const current = state;
  if (current.inFlight === undefined) {
    const read = readFile(path, 'latin1');
    current.inFlight = read;
    read.then(
      () => (current.inFlight = undefined),
      () => (current.inFlight = undefined),
    );
    return read;
  }
  current.next ??= current.inFlight
    .catch(() => undefined)
    .then(() => {
      current.next = undefined;
      return freshTable(path);
    });
  return current.next;
}

/**
 * The uid of the live socket in `table` whose local end is `peer` and remote end `self` (keys from
 * endpointKey). The table is searched as text for the two ends as the kernel writes them, not parsed:
 * with many connections in TIME_WAIT (one per request of a `Connection: close` client, for a minute)
 * the table holds hundreds of thousands of lines, and only one matters. TIME_WAIT and LISTEN entries
 * of the same ends are skipped: they belong to no process.
 */
export function findOwner(table: string, peer: string, self: string): number | undefined {
  for (const width of [8, 32] as const) {
    const local = procEndpoint(peer, width);
    const remote = procEndpoint(self, width);
    if (local === undefined || remote === undefined) continue;
    const needle = ` ${local} ${remote} `;
    for (let at = table.indexOf(needle); at >= 0; at = table.indexOf(needle, at + 1)) {
      const start = table.lastIndexOf('\n', at) + 1;
      const end = table.indexOf('\n', at);
      const fields = table.slice(start, end < 0 ? undefined : end).trim().split(/\s+/);
      if (fields.length < 8 || !/^\d+:$/.test(fields[0]!) || fields[3] === '06' || fields[3] === '0A') continue;
      const uid = Number(fields[7]);
      if (Number.isInteger(uid) && uid >= 0) return uid;
    }
  }
  return undefined;
}

/**
 * A key of endpointKey as /proc/net/tcp (`width` 8: IPv4 only) or tcp6 (32) writes it: the address as
 * 32-bit words in host byte order, upper-case hex, then the port as four hex digits.
 */
function procEndpoint(key: string, width: 8 | 32): string | undefined {
  const [hex, port] = key.split(':');
  if (hex === undefined || port === undefined || hex.length !== 32) return undefined;
  if (width === 8 && !hex.startsWith('00000000000000000000ffff')) return undefined;
  const bytes = Buffer.from(width === 8 ? hex.slice(24) : hex, 'hex');
  if (littleEndian) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return `${bytes.toString('hex').toUpperCase()}:${Number(port).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Node's address string and port → a comparable key: the address as 16 bytes (IPv4 in its IPv4-mapped form), and the port. */
export function endpointKey(address: string | undefined, port: number | undefined): string | undefined {
  if (address === undefined || port === undefined) return undefined;
  const bytes = addressBytes(address);
  return bytes === undefined ? undefined : `${asIpv6(bytes).toString('hex')}:${port}`;
}
