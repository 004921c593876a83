import type { IncomingHttpHeaders } from 'node:http';

/** Headers a proxy or a relaying service adds: a request carrying one was not sent by a local program to us directly. */
const PROXY_HEADERS = ['x-forwarded-for', 'forwarded', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip', 'via'] as const;

/** The first proxy header `headers` carry, as a person would write it, or undefined. */
export function proxyHeaderIn(headers: IncomingHttpHeaders): string | undefined {
  const found = PROXY_HEADERS.find((name) => headers[name] !== undefined);
  return found?.replace(/(^|-)([a-z])/g, (_, dash: string, letter: string) => dash + letter.toUpperCase()).replace('Ip', 'IP');
}
