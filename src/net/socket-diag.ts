import { endianness } from 'node:os';
import { addressBytes, asIpv4, asIpv6 } from './ip-address.js';

/**
 * The owner of one TCP socket, asked of the Linux kernel by its exact four ends over NETLINK_SOCK_DIAG
 * (what `ss` uses). The kernel finds the socket in its hash table, so the answer costs the same whether
 * the machine holds ten sockets or a hundred thousand in TIME_WAIT — unlike /proc/net/tcp, which the
 * kernel generates by walking all of them. Node has no netlink sockets; koffi calls libc's socket(2),
 * send(2), recv(2) and close(2) directly. Loaded when a TCP listener starts: nothing else needs it.
 */

/** One end of a socket: the address as Node writes it, and the port. */
export interface Endpoint {
  address: string;
  port: number;
}

export type SocketOwner =
  | { found: true; uid: number }
  | { found: false }
  /** The kernel could not be asked (no netlink here, or it answered something unexpected). */
  | { failed: string };

export interface SocketDiag {
  /** The uid owning the socket whose local end is `local` and remote end `remote`; never blocks. */
  ownerOf(local: Endpoint, remote: Endpoint): SocketOwner;
}

const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
const IPPROTO_TCP = 6;
const MSG_DONTWAIT = 0x40;
const ENOENT = 2;
const TCP_TIME_WAIT = 6;
const TCP_LISTEN = 10;
const ALL_STATES = 0xffffffff;
const NO_COOKIE = 0xffffffff;

// struct nlmsghdr (16 bytes), then struct inet_diag_req_v2 (8 bytes, then struct inet_diag_sockid: 48).
const REQUEST_BYTES = 16 + 8 + 48;
// In an answer: struct nlmsghdr, then struct inet_diag_msg (family, state, timer, retrans, the sockid, ...).
const ANSWER_SOCKID = 16 + 4;
const ANSWER_UID = 16 + 4 + 48 + 12;
const ANSWER_BUFFER = 8192;

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  send(fd: number, buffer: Buffer, length: number, flags: number): number;
  recv(fd: number, buffer: Buffer, length: number, flags: number): number;
  close(fd: number): number;
  errno(): number;
}

let loading: Promise<SocketDiag | { unavailable: string }> | undefined;

/** The kernel's socket lookup, or why this process cannot use it (then /proc/net/tcp is the way). */
export function socketDiag(platform = process.platform): Promise<SocketDiag | { unavailable: string }> {
  if (platform !== 'linux') return Promise.resolve({ unavailable: `there is no NETLINK_SOCK_DIAG on ${platform}` });
  loading ??= loadLibc().then(
    (libc) => probe(libc),
    (error: unknown) => ({ unavailable: `koffi, which calls the kernel's socket lookup, did not load: ${(error as Error).message}` }),
  );
  return loading;
}

async function loadLibc(): Promise<Libc> {
  const { default: koffi } = await import('koffi');
  const self = koffi.load(null); // libc is already in this process, whichever libc it is
  const socket = self.func('int socket(int, int, int)');
  const send = self.func('long send(int, const void *, size_t, int)');
  const recv = self.func('long recv(int, _Out_ void *, size_t, int)');
  const close = self.func('int close(int)');
  return {
    socket: (domain, type, protocol) => socket(domain, type, protocol) as number,
    send: (fd, buffer, length, flags) => Number(send(fd, buffer, length, flags)),
    recv: (fd, buffer, length, flags) => Number(recv(fd, buffer, length, flags)),
    close: (fd) => close(fd) as number,
    errno: () => koffi.errno(),
  };
}

/** A netlink socket that cannot be opened (a seccomp filter, a kernel without sock_diag) makes the lookup unavailable once, not on every connection. */
function probe(libc: Libc): SocketDiag | { unavailable: string } {
  const fd = libc.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return { unavailable: `the kernel refused a NETLINK_SOCK_DIAG socket (errno ${libc.errno()})` };
  libc.close(fd);
  // One answer buffer for every lookup: they run one at a time, start to end, in this thread.
  const answer = Buffer.alloc(ANSWER_BUFFER);
  return { ownerOf: (local, remote) => ownerOf(libc, answer, local, remote) };
}

function ownerOf(libc: Libc, answer: Buffer, local: Endpoint, remote: Endpoint): SocketOwner {
  const request = diagRequest(local, remote);
  if (request === undefined) return { failed: `not an IP address: ${local.address} or ${remote.address}` };
  const fd = libc.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return { failed: `no NETLINK_SOCK_DIAG socket (errno ${libc.errno()})` };
  try {
    if (libc.send(fd, request, request.length, 0) !== request.length) return { failed: `the request was not sent (errno ${libc.errno()})` };
    // The kernel answers an exact lookup while send() runs, so the answer is already queued: never wait for it.
    const length = libc.recv(fd, answer, answer.length, MSG_DONTWAIT);
    if (length < 0) return { failed: `no answer from the kernel (errno ${libc.errno()})` };
    return readAnswer(answer.subarray(0, length), request);
  } finally {
    libc.close(fd);
  }
}

/** The request for the one socket with these ends; an IPv4 pair (IPv4-mapped included) is asked as AF_INET. */
export function diagRequest(local: Endpoint, remote: Endpoint): Buffer | undefined {
  const localBytes = addressBytes(local.address);
  const remoteBytes = addressBytes(remote.address);
  if (localBytes === undefined || remoteBytes === undefined) return undefined;
  const localV4 = asIpv4(localBytes);
  const remoteV4 = asIpv4(remoteBytes);
  const v4 = localV4 !== undefined && remoteV4 !== undefined;
  const request = Buffer.alloc(REQUEST_BYTES);
  // Netlink's own fields are in host byte order; ports and addresses in network order.
  writeU32(request, 0, REQUEST_BYTES);
  writeU16(request, 4, SOCK_DIAG_BY_FAMILY);
  writeU16(request, 6, NLM_F_REQUEST);
  writeU32(request, 8, 1); // sequence number: one request per netlink socket
  request[16] = v4 ? AF_INET : AF_INET6;
  request[17] = IPPROTO_TCP;
  writeU32(request, 20, ALL_STATES);
  request.writeUInt16BE(local.port, 24);
  request.writeUInt16BE(remote.port, 26);
  (v4 ? localV4 : asIpv6(localBytes)).copy(request, 28);
  (v4 ? remoteV4 : asIpv6(remoteBytes)).copy(request, 44);
  writeU32(request, 64, NO_COOKIE);
  writeU32(request, 68, NO_COOKIE);
  return request;
}

/**
 * The socket's owner from the kernel's answer, once the answer is shown to be about the socket asked
 * for; a TIME_WAIT or LISTEN socket with those ends belongs to no client, so counts as not found.
 */
export function readAnswer(answer: Buffer, request: Buffer): SocketOwner {
  if (answer.length < 16) return { failed: 'a truncated answer from the kernel' };
  const type = readU16(answer, 4);
  if (type === NLMSG_ERROR && answer.length >= 20) {
    const errno = -readI32(answer, 16);
    return errno === ENOENT ? { found: false } : { failed: `the kernel's socket lookup failed (errno ${errno})` };
  }
  if (type !== SOCK_DIAG_BY_FAMILY || answer.length < ANSWER_UID + 4) return { failed: `an unexpected answer from the kernel (type ${type})` };
  if (endsOf(answer, ANSWER_SOCKID, answer[16]!) !== endsOf(request, 24, request[16]!)) return { failed: 'the kernel answered about another socket' };
  const state = answer[17];
  if (state === TCP_TIME_WAIT || state === TCP_LISTEN) return { found: false };
  return { found: true, uid: readU32(answer, ANSWER_UID) };
}

/**
 * Ports and addresses of a struct inet_diag_sockid at `at`, IPv4 or IPv4-mapped alike: an AF_INET6
 * client connected to `::ffff:127.0.0.1` is found by an AF_INET lookup and answered as AF_INET6.
 */
function endsOf(buffer: Buffer, at: number, family: number): string {
  const address = (offset: number) => {
    const bytes = buffer.subarray(at + offset, at + offset + (family === AF_INET ? 4 : 16));
    return (asIpv4(bytes) ?? bytes).toString('hex');
  };
  return `${address(4)}:${buffer.readUInt16BE(at)} ${address(20)}:${buffer.readUInt16BE(at + 2)}`;
}

const littleEndian = endianness() === 'LE';
const writeU16 = (buffer: Buffer, at: number, value: number) => (littleEndian ? buffer.writeUInt16LE(value, at) : buffer.writeUInt16BE(value, at));
const writeU32 = (buffer: Buffer, at: number, value: number) => (littleEndian ? buffer.writeUInt32LE(value, at) : buffer.writeUInt32BE(value, at));
const readU16 = (buffer: Buffer, at: number) => (littleEndian ? buffer.readUInt16LE(at) : buffer.readUInt16BE(at));
const readU32 = (buffer: Buffer, at: number) => (littleEndian ? buffer.readUInt32LE(at) : buffer.readUInt32BE(at));
const readI32 = (buffer: Buffer, at: number) => (littleEndian ? buffer.readInt32LE(at) : buffer.readInt32BE(at));
