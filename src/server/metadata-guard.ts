import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
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

/** A request as the guard sees it: fastify's request and node's IncomingMessage both fit. */
export interface GuardedRequest {
  method?: string | undefined;
  headers: IncomingHttpHeaders;
  socket: { remoteAddress?: string | undefined };
}

/** The rule a request breaks, and the answer it gets. */
export interface Refusal {
  rule: string;
  error: Error;
}

/**
 * The rules of the TCP metadata listener, checked before routing: what a web page in the user's
 * browser (DNS rebinding, CORS) or a service that can be made to fetch URLs (SSRF) could send is
 * refused with a 403 that names the rule and nothing else. No CORS header is ever sent.
 */
export class MetadataGuard {
  // The port is known once the listener listens (an inherited socket brings its own), before any request.
  private hosts: Set<string> | undefined;
  private readonly countRefusal = floodLimitedCounter();

  constructor(
    private readonly port: () => number,
    private readonly logger: Logger,
  ) {}

  /** The first rule `request` breaks; undefined when it may be answered. */
  broken(request: GuardedRequest): Refusal | undefined {
    const { headers } = request;
    if (!isLoopback(request.socket.remoteAddress)) {
      return { rule: 'peer', error: new RequestRefusedError('this listener answers loopback connections only', { hint: HINT }) };
    }
    if (request.method === 'OPTIONS') {
      return { rule: 'options', error: new RequestRefusedError('OPTIONS (a CORS preflight) is refused: web pages get nothing here', { hint: HINT }) };
    }
    if (headers.origin !== undefined) {
      return { rule: 'origin', error: new RequestRefusedError('requests with an Origin header (sent by web pages) are refused', { hint: HINT }) };
    }
    this.hosts ??= allowedHosts(this.port());
    if (headers.host === undefined || !this.hosts.has(headers.host.toLowerCase())) {
      return { rule: 'host', error: new RequestRefusedError('the Host header is not one this listener answers to', { hint: HINT }) };
    }
    const proxied = proxyHeaderIn(headers);
    if (proxied !== undefined) {
      return { rule: 'proxy', error: new ProxiedRequestError(`requests relayed by a proxy (${proxied}) are refused`, { hint: HINT }) };
    }
    return undefined;
  }

  allows(request: GuardedRequest): boolean {
    return this.broken(request) === undefined;
  }

  /** Refuses, and logs (flood-limited), every request that breaks a rule. */
  install(app: FastifyInstance): void {
    app.addHook('onRequest', (request, _reply, done) => {
      const refusal = this.broken(request);
      if (refusal === undefined) return done();
      const { count, log } = this.countRefusal(refusal.rule);
      if (log) this.logger.warn({ event: 'metadata_refused', rule: refusal.rule, method: request.method, count }, 'refused a metadata request');
      done(refusal.error);
    });
  }
}
