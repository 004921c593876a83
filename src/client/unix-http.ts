import { connect } from 'node:net';

/**
 * One HTTP/1.1 exchange over a Unix socket, with `Connection: close`: the request goes out in one
 * write, and the answer is everything read until the daemon closes. That is all TokendClient needs
 * from the daemon it talks to, and it spares every CLI command the load of node:http's client, agent
 * and parser (~8 ms of a `tokend token`, docs/performance.md).
 */

export interface UnixHttpRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface UnixHttpAnswer {
  status: number;
  body: Buffer;
}

/** Why an exchange failed: a socket errno (ENOENT, ECONNREFUSED, EACCES, …) or one of these. */
export type ExchangeFailure = 'timeout' | 'too-large' | 'malformed';

export class ExchangeError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ExchangeError';
  }
}

const HEAD_END = Buffer.from('\r\n\r\n');

export function exchange(socketPath: string, request: UnixHttpRequest, options: { timeoutMs: number; maxBytes: number }): Promise<UnixHttpAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (outcome: () => UnixHttpAnswer) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      try {
        resolve(outcome());
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    };
    const fail = (code: string, message: string) =>
      settle(() => {
        throw new ExchangeError(code, message);
      });
    // Idle time, as node:http's `timeout`: a long-poll that is answered in time never trips it.
    socket.setTimeout(options.timeoutMs, () => fail('timeout' satisfies ExchangeFailure, `no answer within ${options.timeoutMs} ms`));
    socket.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? 'error', error.message));
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > options.maxBytes) fail('too-large' satisfies ExchangeFailure, `the answer is over ${options.maxBytes} bytes`);
      else chunks.push(chunk);
    });
    socket.on('end', () => settle(() => parseAnswer(Buffer.concat(chunks))));
    // write, not end: node's server drops a request whose client half-closes before the answer.
    socket.write(requestBytes(request));
  });
}

function requestBytes(request: UnixHttpRequest): string {
  const body = request.body ?? '';
  const headers = { host: 'localhost', ...request.headers, connection: 'close', ...(body === '' ? {} : { 'content-length': String(Buffer.byteLength(body)) }) };
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return `${request.method} ${request.path} HTTP/1.1\r\n${lines.join('')}\r\n${body}`;
}

/** The status and body of a whole HTTP/1.1 answer; ExchangeError('malformed') for anything else. */
export function parseAnswer(answer: Buffer): UnixHttpAnswer {
  const malformed = (why: string) => new ExchangeError('malformed' satisfies ExchangeFailure, why);
  const headEnd = answer.indexOf(HEAD_END);
  if (headEnd < 0) throw malformed(answer.length === 0 ? 'the connection closed without an answer' : 'the answer has no end of headers');
  const [statusLine = '', ...headerLines] = answer.toString('latin1', 0, headEnd).split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine);
  if (status === null) throw malformed('the answer does not start with an HTTP/1.1 status line');
  const headers = new Map<string, string>();
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw malformed('the answer has a malformed header line');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const rest = answer.subarray(headEnd + HEAD_END.length);
  if (headers.get('transfer-encoding')?.toLowerCase() === 'chunked') return { status: Number(status[1]), body: dechunk(rest, malformed) };
  const declared = headers.get('content-length');
  if (declared === undefined) return { status: Number(status[1]), body: rest };
  const length = /^\d+$/.test(declared) ? Number(declared) : Number.NaN;
  if (!(length <= rest.length)) throw malformed(Number.isNaN(length) ? 'the answer has a malformed Content-Length' : 'the answer was cut short');
  return { status: Number(status[1]), body: rest.subarray(0, length) };
}

function dechunk(data: Buffer, malformed: (why: string) => Error): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) throw malformed('the answer was cut short');
    const size = Number.parseInt(data.toString('latin1', at, lineEnd).split(';')[0]!, 16);
    if (Number.isNaN(size)) throw malformed('the answer has a malformed chunk');
    if (size === 0) return Buffer.concat(parts);
    const start = lineEnd + 2;
    if (start + size + 2 > data.length) throw malformed('the answer was cut short');
    parts.push(data.subarray(start, start + size));
    at = start + size + 2;
  }
}
