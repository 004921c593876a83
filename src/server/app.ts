import { createServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyServerFactory } from 'fastify';
import type { Broker } from '../broker/broker.js';
import { BadRequestError } from '../errors.js';
import type { Logger } from '../log.js';
import { answerClientError, refuseConnect, refuseExpectation } from '../net/client-errors.js';
import { answerCachedToken, type CachedTokenDeps, type CallerOf } from './cached-token.js';
import { installErrorHandling } from './error-handler.js';
import { registerManagementRoutes, type ManagementDeps } from './management-routes.js';
import { registerMetadataRoutes, type MetadataFacts } from './metadata-routes.js';
import { sendJson } from './replies.js';

export interface AppDeps {
  broker: Broker;
  logger: Logger;
  /** Given for the Unix-socket app only: the management API is never served on TCP. */
  management?: Omit<ManagementDeps, 'broker' | 'callerOf'>;
  callerOf?: CallerOf;
  /** Checks every request before routing (the TCP listener's rules). */
  guard?: RequestGuard;
  /** Facts for the metadata tree that the client files do not hold. */
  metadata?: MetadataFacts;
}

/** A listener's own rules for requests: `install` refuses what breaks them, `allows` says whether a request does not. */
export interface RequestGuard {
  install(app: FastifyInstance): void;
  allows(request: IncomingMessage): boolean;
}

const BODY_LIMIT = 64 * 1024;

// A request must arrive whole within 30 s (slow clients are cut off); an answer may take longer than
// that (a refresh is bounded at 20 s, a login long-poll at 25 s), so idle sockets get 60 s.
const CONNECTION_TIMEOUT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

/**
 * The HTTP server fastify would make, with the same timeouts, that answers cache hits before
 * fastify's router (see answerCachedToken).
 */
function tokenServer(deps: CachedTokenDeps): FastifyServerFactory {
  return (handler) => {
    // Node would refuse a request without Host with a bare 400 of its own; the TCP listener's guard
    // refuses it in tokend's format, and on the owner-only Unix socket it does not matter.
    const server = createServer({ requireHostHeader: false }, (request, response) => {
      if (!answerCachedToken(deps, request, response)) handler(request, response);
    });
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.setTimeout(CONNECTION_TIMEOUT_MS);
    return server;
  };
}

/** The HTTP surface, without a listener: tests use inject(), the daemon listens where it is told. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const callerOf = deps.callerOf ?? (() => ({ transport: 'unix' }));
  let closing = false;
  const app = Fastify({
    serverFactory: tokenServer({ broker: deps.broker, callerOf, allows: (request) => deps.guard?.allows(request) ?? true, closing: () => closing }),
    logger: false,
    bodyLimit: BODY_LIMIT,
    // The timeouts are the server's (tokenServer): fastify applies its own only to a server it makes.
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: false },
    clientErrorHandler: (error, socket) => answerClientError(error, socket),
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
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  // fastify closes a server of a serverFactory only when its own listen() opened it: one listening on
  // an inherited descriptor (socket activation, listenOnDescriptor) is closed here.
  app.addHook('onClose', (instance, done) => {
    if (!instance.server.listening) return done();
    instance.server.closeIdleConnections();
    instance.server.close(() => done());
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('metadata-flavor', 'Google');
    return payload;
  });
  installErrorHandling(app, deps.logger);
  deps.guard?.install(app);
  registerMetadataRoutes(app, { broker: deps.broker, callerOf, facts: deps.metadata ?? {} });
  if (deps.management !== undefined) {
    registerManagementRoutes(app, { ...deps.management, broker: deps.broker, callerOf });
  }
  return app;
}
