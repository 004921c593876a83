import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { endianness } from 'node:os';

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
 * Which local user owns the client end of a loopback TCP connection. On Linux the kernel lists every
 * socket of this network namespace in /proc/net/tcp and tcp6 with its owner's uid; the client's socket
 * is the entry whose local end is our peer and whose remote end is us. Elsewhere (macOS) there is no
 * such table and the answer is unknown. A connection that closed before the lookup is unknown too.
 * Reading the table costs the kernel a walk over every TCP socket (about 5 ms with 400 open here), so
 * the likely table is read first.
 */
export async function tcpPeerUid(ends: TcpEnds, platform = process.platform): Promise<PeerUid> {
  if (platform !== 'linux') return { known: false, supported: false, reason: `the owner of a TCP peer cannot be looked up on ${platform}` };
  const peer = endpointKey(ends.remoteAddress, ends.remotePort);
  const self = endpointKey(ends.localAddress, ends.localPort);
  if (peer === undefined || self === undefined) return { known: false, supported: true, reason: 'the connection has no address' };
  let readable = 0;
  for (const table of tablesFor(ends.localAddress)) {
    let text: string;
    try {
      text = await readFile(table, 'latin1');
    } catch {
      continue; // tcp6 is absent when IPv6 is disabled
    }
    readable++;
    const uid = findOwner(text, peer, self);
    if (uid !== undefined) return { known: true, uid };
  }
  return {
    known: false,
    supported: true,
    reason: readable === 0 ? 'the kernel socket tables (/proc/net/tcp) are not readable' : 'the client socket is not in the kernel tables (it closed)',
  };
}

/** Finds the line whose local end is `peer` and remote end `self`; returns its uid column. */
export function findOwner(table: string, peer: string, self: string): number | undefined {
  for (const line of table.split('\n')) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8 || !/^\d+:$/.test(fields[0] ?? '')) continue;
    if (procEndpointKey(fields[1]!) !== peer || procEndpointKey(fields[2]!) !== self) continue;
    const uid = Number(fields[7]);
    if (Number.isInteger(uid) && uid >= 0) return uid;
  }
  return undefined;
}

/** `ADDR:PORT` from /proc (address as 32-bit words in host byte order, port in hex) → a comparable key. */
function procEndpointKey(field: string): string | undefined {
  const [hexAddress, hexPort] = field.split(':');
  if (hexAddress === undefined || hexPort === undefined || !/^[0-9A-Fa-f]+$/.test(hexAddress + hexPort)) return undefined;
  if (hexAddress.length !== 8 && hexAddress.length !== 32) return undefined;
  const bytes = Buffer.from(hexAddress, 'hex');
  if (littleEndian) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return `${ipv6Bytes(bytes).toString('hex')}:${parseInt(hexPort, 16)}`;
}

/** Node's address string and port → the same key as procEndpointKey. */
export function endpointKey(address: string | undefined, port: number | undefined): string | undefined {
  if (address === undefined || port === undefined) return undefined;
  const bytes = parseAddress(address);
  return bytes === undefined ? undefined : `${ipv6Bytes(bytes).toString('hex')}:${port}`;
}

/** IPv4 becomes its IPv4-mapped IPv6 form, so a dual-stack listener's `::ffff:127.0.0.1` compares equal. */
function ipv6Bytes(bytes: Buffer): Buffer {
  if (bytes.length === 16) return bytes;
  return Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff]), bytes]);
}

function parseAddress(address: string): Buffer | undefined {
  const bare = address.replace(/%.*$/, ''); // zone index
  if (isIPv4(bare)) return Buffer.from(bare.split('.').map(Number));
  if (!isIPv6(bare)) return undefined;
  let text = bare;
  const embedded = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (embedded !== null) {
    const [a, b, c, d] = embedded[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, embedded.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headGroups = head === '' || head === undefined ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(fill).fill('0'), ...tailGroups];
  if (groups.length !== 8) return undefined;
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}
