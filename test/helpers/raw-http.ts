/**
 * Bytes on a real socket, for the bad-input suites: whatever a client can send, including what no
 * HTTP library would (broken request lines, raw CR LF, invalid UTF-8), and every answer read back.
 */
import { connect, type Socket } from 'node:net';

export type Target = { socketPath: string } | { port: number };

export interface RawAnswer {
  /** One per answer on the connection (pipelining gives several); empty when the daemon closed without a word. */
  responses: Array<{ status: number; headers: Record<string, string>; body: string }>;
  /** The bytes after the last complete answer, if any. */
  rest: string;
  closedByServer: boolean;
}

export function open(target: Target): Socket {
  return 'socketPath' in target ? connect(target.socketPath) : connect(target.port, '127.0.0.1');
}

/**
 * Writes `bytes` (then a half-close when `end`), and reads until the server closes, `expect` answers
 * arrived, or `timeoutMs` passed.
 */
export function exchange(
  target: Target,
  bytes: Buffer | string,
  options: { end?: boolean; expect?: number; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  const { end = false, expect = 1, timeoutMs = 3000 } = options;
  // Answers to HEAD carry a Content-Length but no body.
  const head = (typeof bytes === 'string' ? bytes : bytes.toString('latin1', 0, 5)).startsWith('HEAD ');
  return new Promise((resolve) => {
    const socket = open(target);
    let received = Buffer.alloc(0);
    let closedByServer = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parseResponses(received, head), closedByServer });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('connect', () => {
      socket.write(bytes);
      if (end) socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (parseResponses(received, head).responses.length >= expect) finish();
    });
    socket.on('end', () => {
      closedByServer = true;
      finish();
    });
    socket.on('error', () => {
      closedByServer = true;
      finish();
    });
  });
}

/** HTTP/1.1 answers with Content-Length (all tokend sends), in order; `head`: answers without bodies. */
export function parseResponses(data: Buffer, answersHead = false): Pick<RawAnswer, 'responses' | 'rest'> {
  const responses: RawAnswer['responses'] = [];
  let offset = 0;
  for (;;) {
    const headEnd = data.indexOf('\r\n\r\n', offset);
    if (headEnd < 0) break;
    const lines = data.subarray(offset, headEnd).toString('latin1').split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (status === null) break;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = answersHead ? 0 : Number(headers['content-length'] ?? 0);
    const bodyStart = headEnd + 4;
    if (data.length < bodyStart + length) break;
    responses.push({ status: Number(status[1]), headers, body: data.subarray(bodyStart, bodyStart + length).toString('utf8') });
    offset = bodyStart + length;
  }
  return { responses, rest: data.subarray(offset).toString('latin1') };
}

/** A GET as Google's metadata clients send it. */
export function request(path: string, headers: Record<string, string> = {}, method = 'GET'): string {
  const all = { host: 'metadata.google.internal', 'metadata-flavor': 'Google', ...headers };
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(all)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`;
}
