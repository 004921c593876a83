import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Broker, CallerInfo } from '../broker/broker.js';
import type { Logger } from '../log.js';
import { installErrorHandling } from './error-handler.js';
import { registerManagementRoutes, type ManagementDeps } from './management-routes.js';
import { registerMetadataRoutes } from './metadata-routes.js';

export interface AppDeps {
  broker: Broker;
  logger: Logger;
  /** Given for the Unix-socket app only: the management API is never served on TCP. */
  management?: Omit<ManagementDeps, 'broker' | 'callerOf'>;
  callerOf?: (request: FastifyRequest) => CallerInfo;
}

const BODY_LIMIT = 64 * 1024;

/** The HTTP surface, without a listener: tests use inject(), the daemon listens where it is told. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    // Headers must arrive quickly; slow-loris clients on the socket are cut off.
    connectionTimeout: 30_000,
    requestTimeout: 120_000,
    keepAliveTimeout: 5_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: false },
  });
  const callerOf = deps.callerOf ?? (() => ({ transport: 'unix' }));

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('metadata-flavor', 'Google');
    // fastify appends "; charset=utf-8"; Python's google-auth 1.x wants exactly "application/json".
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type.startsWith('application/json')) reply.header('content-type', 'application/json');
    return payload;
  });
  installErrorHandling(app, deps.logger);
  registerMetadataRoutes(app, { broker: deps.broker, callerOf });
  if (deps.management !== undefined) {
    registerManagementRoutes(app, { ...deps.management, broker: deps.broker, callerOf });
  }
  return app;
}
