import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { BadRequestError } from '../errors.js';

/**
 * What a listener answers when Node's HTTP parser refuses a request before any route sees it (not
 * HTTP, headers too large, a request that never finished): the same error body as every other error,
 * instead of Node's bare 400 or fastify's own format. The parser's own code never reaches the caller.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket, format: 'json' | 'text' = 'json'): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, message] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'the request did not arrive in time']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'the request headers are too large (16 KiB at most)']
        : [400, 'the request is not valid HTTP/1.1'];
  answerOnSocket(socket, status, message, format);
}

/** CONNECT (a proxy tunnel): Node would drop the connection without a word. */
export function refuseConnect(_request: IncomingMessage, socket: Socket, format: 'json' | 'text' = 'json'): void {
  answerOnSocket(socket, 405, 'CONNECT is not served: tokend is not a proxy', format);
}

/** tokend's error body for `message`, as JSON (the metadata listeners) or text (the consent listener's browser). */
function errorAnswer(message: string, hint: string, format: 'json' | 'text'): { body: string; headers: Record<string, string> } {
  const body = format === 'json' ? JSON.stringify({ error: new BadRequestError(message, { hint }).toJSON() }) : `tokend: ${message}\n`;
  return {
    body,
    headers: {
      'Content-Type': format === 'json' ? 'application/json' : 'text/plain; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(body)),
      ...(format === 'json' ? { 'Metadata-Flavor': 'Google' } : {}),
      Connection: 'close',
    },
  };
}

function answerOnSocket(socket: Socket, status: number, message: string, format: 'json' | 'text'): void {
  const { body, headers } = errorAnswer(message, 'send one well-formed HTTP/1.1 request; docs/metadata.md lists what tokend serves', format);
  if (socket.writable) {
    const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${head}\r\n${body}`);
  }
  socket.destroy();
}

/** An `Expect:` other than 100-continue: Node would answer a bare 417 of its own. */
export function refuseExpectation(_request: IncomingMessage, response: ServerResponse, format: 'json' | 'text' = 'json'): void {
  const { body, headers } = errorAnswer('the Expect header asks for something tokend does not do', 'send the request without an Expect header', format);
  response.writeHead(417, headers);
  response.end(body);
}
