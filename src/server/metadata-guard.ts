import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ProxiedRequestError, RequestRefusedError } from '../errors.js';
import { floodLimitedCounter, type Logger } from '../log.js';
import { proxyHeaderIn } from './proxy-headers.js';

const HINT = 'connect to the listener directly (http://127.0.0.1:PORT), from a program rather than a web page; see docs/errors.md#request_refused';

/** The `Host` values a program pointed at this listener sends; a DNS-rebinding page sends its own name. */
export function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'metadata.google.internal', `metadata.google.internal:${port}`]);
}

function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (/^127\./.test(address) || address === '::1' || /^::ffff:127\./.test(address));
}

/**
 * The rules of the TCP metadata listener, checked before routing: what a web page in the user's
 * browser (DNS rebinding, CORS) or a service that can be made to fetch URLs (SSRF) could send is
 * refused with a 403 that names the rule and nothing else. No CORS header is ever sent.
 */
export function installMetadataGuard(app: FastifyInstance, port: () => number, logger: Logger): void {
  // The port is known once the listener listens (an inherited socket brings its own), before any request.
  let hosts: Set<string> | undefined;
  const countRefusal = floodLimitedCounter();
  const refuse = (request: FastifyRequest, rule: string, error: Error) => {
    const { count, log } = countRefusal(rule);
    if (log) {
      logger.warn({ event: 'metadata_refused', rule, method: request.method, count }, 'refused a metadata request');
    }
    return error;
  };
  app.addHook('onRequest', (request, _reply, done) => {
    const { headers } = request;
    if (!isLoopback(request.socket.remoteAddress)) {
      return done(refuse(request, 'peer', new RequestRefusedError('this listener answers loopback connections only', { hint: HINT })));
    }
    if (request.method === 'OPTIONS') {
      return done(refuse(request, 'options', new RequestRefusedError('OPTIONS (a CORS preflight) is refused: web pages get nothing here', { hint: HINT })));
    }
    if (headers.origin !== undefined) {
      return done(refuse(request, 'origin', new RequestRefusedError('requests with an Origin header (sent by web pages) are refused', { hint: HINT })));
    }
    hosts ??= allowedHosts(port());
    if (headers.host === undefined || !hosts.has(headers.host.toLowerCase())) {
      return done(refuse(request, 'host', new RequestRefusedError('the Host header is not one this listener answers to', { hint: HINT })));
    }
    const proxied = proxyHeaderIn(headers);
    if (proxied !== undefined) {
      return done(refuse(request, 'proxy', new ProxiedRequestError(`requests relayed by a proxy (${proxied}) are refused`, { hint: HINT })));
    }
    done();
  });
}
