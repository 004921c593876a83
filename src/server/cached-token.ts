import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Broker, CallerInfo, IssuedToken } from '../broker/broker.js';
import { ScopeSet } from '../broker/scopes.js';
import { metadataHeaderRefusal } from './metadata-headers.js';
import { tokenBody, tokenHeaderList } from './replies.js';

/** Who asked, from what the connection tells. */
export type CallerOf = (request: Pick<IncomingMessage, 'socket'>) => CallerInfo;

export interface CachedTokenDeps {
  broker: Broker;
  callerOf: CallerOf;
  /** The listener's own request rules (the TCP guard); true when `request` breaks none. */
  allows: (request: IncomingMessage) => boolean;
  /** True once the app closes: fastify then answers 503. */
  closing: () => boolean;
}

/**
 * The token path in its one plain form: an account, optionally `?scopes=` in characters that every
 * URL decoder reads alike. Anything else (another parameter, `+`, `;`, a repeated `scopes`) is routed.
 */
const TOKEN_URL = /^\/computeMetadata\/v1\/instance\/service-accounts\/([\w.~@%-]+)\/token(?:\?scopes=([\w.~%,:/-]*))?$/;

function decoded(component: string): string {
  return component.includes('%') ? decodeURIComponent(component) : component;
}

/**
 * Answers a token request that is a plain cache hit before fastify sees it, with the same bytes the
 * route would send: a program asking for a token before every call costs what a bare HTTP server
 * costs (docs/performance.md). Everything else, and every request that would be refused or fail,
 * returns false and goes through fastify, which answers it as always; nothing is checked here that
 * the route does not check again.
 */
export function answerCachedToken(deps: CachedTokenDeps, request: IncomingMessage, response: ServerResponse): boolean {
  if (request.method !== 'GET' || deps.closing()) return false;
  const match = TOKEN_URL.exec(request.url ?? '');
  if (match === null || metadataHeaderRefusal(request.headers) !== undefined || !deps.allows(request)) return false;
  let issued: IssuedToken | undefined;
  try {
    const account = decoded(match[1]!);
    const scopes = match[2] === undefined || match[2] === '' ? undefined : ScopeSet.parse(decoded(match[2]));
    const caller = deps.callerOf(request);
    issued = deps.broker.serveCached(scopes === undefined ? { account, caller } : { account, scopes, caller });
  } catch {
    return false;
  }
  if (issued === undefined) return false;
  const body = tokenBody(issued);
  // A string body goes out in one write with the headers (a Buffer would take a second one).
  response.writeHead(200, tokenHeaderList(Buffer.byteLength(body)));
  response.end(body);
  return true;
}
