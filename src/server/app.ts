import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Broker, CallerInfo } from '../broker/broker.js';
import { BadRequestError } from '../errors.js';
import type { Logger } from '../log.js';
import { answerClientError, refuseConnect, refuseExpectation } from '../net/client-errors.js';
import { installErrorHandling } from './error-handler.js';
import { registerManagementRoutes, type ManagementDeps } from './management-routes.js';
import { registerMetadataRoutes, type MetadataFacts } from './metadata-routes.js';
import { sendJson } from './replies.js';

export interface AppDeps {
  broker: Broker;
  logger: Logger;
  /** Given for the Unix-socket app only: the management API is never served on TCP. */
  management?: Omit<ManagementDeps, 'broker' | 'callerOf'>;
  callerOf?: (request: FastifyRequest) => CallerInfo;
  /** Checks every request before routing (the TCP listener's rules). */
  guard?: (app: FastifyInstance) => void;
  /** Facts for the metadata tree that the client files do not hold. */
  metadata?: MetadataFacts;
}

const BODY_LIMIT = 64 * 1024;

/** The HTTP surface, without a listener: tests use inject(), the daemon listens where it is told. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    // A request must arrive whole within 30 s (slow clients are cut off); an answer may take longer
    // than that (a refresh is bounded at 20 s, a login long-poll at 25 s), so idle sockets get 60 s.
    connectionTimeout: 60_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 5_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: false },
    clientErrorHandler: (error, socket) => answerClientError(error, socket),
    // Node would refuse a request without Host with a bare 400 of its own; the TCP listener's guard
    // refuses it in tokend's format, and on the owner-only Unix socket it does not matter.
    http: { requireHostHeader: false },
    // Errors fastify raises before routing (a malformed URL) get the same body as every other error.
    frameworkErrors: (error, _request, reply) => {
      const mapped = new BadRequestError(error.code === 'FST_ERR_BAD_URL' ? 'the request URL is malformed' : 'the request is malformed', {
        hint: 'see docs/metadata.md for the paths tokend serves',
      });
      // onSend hooks do not run for these: the flavor header is set here.
      void sendJson(reply.header('metadata-flavor', 'Google'), { error: mapped.toJSON() }, 400);
    },
  });
  app.server.on('checkExpectation', refuseExpectation);
  app.server.on('connect', (request: IncomingMessage, socket: Socket) => refuseConnect(request, socket));
  const callerOf = deps.callerOf ?? (() => ({ transport: 'unix' }));

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('metadata-flavor', 'Google');
    return payload;
  });
  installErrorHandling(app, deps.logger);
  deps.guard?.(app);
  registerMetadataRoutes(app, { broker: deps.broker, callerOf, facts: deps.metadata ?? {} });
  if (deps.management !== undefined) {
    registerManagementRoutes(app, { ...deps.management, broker: deps.broker, callerOf });
  }
  return app;
}
