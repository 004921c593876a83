import type { FastifyReply } from 'fastify';
import type { IssuedToken } from '../broker/broker.js';
import type { Secret } from '../secret.js';

// Exact types: Python's google-auth 1.x compares the whole Content-Type string with "application/json".
const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'application/text';

export function sendJson(reply: FastifyReply, body: unknown, status = 200): FastifyReply {
  // A Buffer, so that fastify leaves the type alone instead of appending "; charset=utf-8".
  return reply.code(status).header('content-type', JSON_TYPE).send(Buffer.from(JSON.stringify(body)));
}

export function sendText(reply: FastifyReply, body: string, status = 200): FastifyReply {
  return reply.code(status).header('content-type', TEXT_TYPE).send(body);
}

/** A metadata "directory": one entry a line, sub-directories ending in `/`. */
export function sendListing(reply: FastifyReply, entries: string[]): FastifyReply {
  return sendText(reply, entries.map((entry) => `${entry}\n`).join(''));
}

/** The headers of a token answer, whichever path sends it (the flavor header too: the cache-hit path skips fastify's onSend). */
export const TOKEN_HEADERS = { 'cache-control': 'no-store', 'content-type': JSON_TYPE, 'metadata-flavor': 'Google' } as const;
const TOKEN_HEADER_LIST = Object.entries(TOKEN_HEADERS).flat();

/**
 * TOKEN_HEADERS and the length, as the flat `[name, value, …]` list node's `writeHead` takes. A packed
 * array copies for almost nothing; spreading the object into a new one on every cache hit cost 7 %
 * of the daemon's CPU time, in the spread and in node's walk over the new object (docs/performance.md).
 */
export function tokenHeaderList(contentLength: number): string[] {
  return [...TOKEN_HEADER_LIST, 'content-length', String(contentLength)];
}

/**
 * The body last made for each token: expires_in changes once a second, and a program asking a
 * thousand times a second gets the same string instead of a new one to build and measure each time.
 * It lives no longer than the token it holds (the Secret is the key).
 */
const lastBodies = new WeakMap<Secret, { expiresIn: number; body: string }>();

/** A token answer's body, in the metadata server's shape. */
export function tokenBody(issued: IssuedToken): string {
  const last = lastBodies.get(issued.accessToken);
  if (last?.expiresIn === issued.expiresIn) return last.body;
  const body = `{"access_token":${JSON.stringify(issued.accessToken.reveal())},"expires_in":${issued.expiresIn},"token_type":"Bearer"}`;
  lastBodies.set(issued.accessToken, { expiresIn: issued.expiresIn, body });
  return body;
}

export function sendToken(reply: FastifyReply, issued: IssuedToken): FastifyReply {
  return reply.headers(TOKEN_HEADERS).send(Buffer.from(tokenBody(issued)));
}
