import type { FastifyReply } from 'fastify';

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
