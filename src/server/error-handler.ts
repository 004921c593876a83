import { ownLogLocation } from '../log-location.js';
import type { FastifyError, FastifyInstance } from 'fastify';
import { BadRequestError, InternalError, isTokendError, NotFoundError } from '../errors.js';
import type { Logger } from '../log.js';
import { sendJson } from './replies.js';

/**
 * Known errors go to clients as `{code, message, hint, details}`; anything else becomes a generic 500
 * and is logged by class only (fastify would otherwise send `error.message` even for internal errors).
 */
export function installErrorHandling(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (isTokendError(error)) {
      if (error.httpStatus >= 500) logger.warn({ event: 'request_failed', url: request.routeOptions.url, err: error }, error.message);
      const retryAfter = error.details?.retryAfterSeconds;
      if (typeof retryAfter === 'number') void reply.header('retry-after', String(retryAfter));
      return sendJson(reply, { error: error.toJSON() }, error.httpStatus);
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      // fastify's own 4xx (bad JSON, body too large, unsupported media type): its messages hold no secrets.
      const mapped = new BadRequestError(error.message, { hint: 'see docs/metadata.md for what tokend accepts' });
      return sendJson(reply, { error: mapped.toJSON() }, error.statusCode);
    }
    logger.error({ event: 'internal_error', url: request.routeOptions.url, err: error }, 'unexpected error while answering a request');
    return sendJson(reply, { error: new InternalError('internal error', { hint: `${ownLogLocation()} says what failed` }).toJSON() }, 500);
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new NotFoundError(`${request.method} ${request.url.split('?')[0] ?? ''} is not served by tokend`, {
      hint: 'docs/metadata.md lists the paths tokend serves',
    });
    return sendJson(reply, { error: error.toJSON() }, 404);
  });
}
