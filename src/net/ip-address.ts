import { isIPv4, isIPv6 } from 'node:net';

/** An IP address as Node writes it (zone index allowed) → its bytes: 4 for IPv4, 16 for IPv6; undefined if it is neither. */
export function addressBytes(address: string): Buffer | undefined {
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

const V4_MAPPED_PREFIX = Buffer.from('00000000000000000000ffff', 'hex');

/** IPv4 in its IPv4-mapped IPv6 form, so a dual-stack listener's `::ffff:127.0.0.1` compares equal to `127.0.0.1`. */
export function asIpv6(bytes: Buffer): Buffer {
  return bytes.length === 16 ? bytes : Buffer.concat([V4_MAPPED_PREFIX, bytes]);
}

/** The IPv4 address of IPv4 or IPv4-mapped bytes; undefined for any other IPv6 address. */
export function asIpv4(bytes: Buffer): Buffer | undefined {
  if (bytes.length === 4) return bytes;
  return bytes.subarray(0, 12).equals(V4_MAPPED_PREFIX) ? bytes.subarray(12) : undefined;
}
