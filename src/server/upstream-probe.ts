import type { UpstreamHttp } from '../net/upstream-fetch.js';
import { UpstreamConnectError } from '../net/upstream-fetch.js';
import type { UpstreamProbe } from '../protocol.js';

export type { UpstreamProbe };

/**
 * Asks each OAuth endpoint once, as the daemon reaches it (through its proxy): any HTTP answer means
 * reachable; its Date header against this machine's clock gives the skew. Nothing is sent that a
 * server could act on (a GET of the token endpoint is refused by design).
 */
export async function probeUpstreams(endpoints: string[], http: Pick<UpstreamHttp, 'fetch' | 'route'>, now: () => number, timeoutMs = 3_000): Promise<UpstreamProbe[]> {
  return Promise.all(
    endpoints.map(async (endpoint): Promise<UpstreamProbe> => {
      const host = new URL(endpoint).host;
      const route = http.route(endpoint);
      const sent = now();
      try {
        const response = await http.fetch(endpoint, { method: 'GET', redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
        await response.body?.cancel();
        const received = now();
        const date = Date.parse(response.headers.get('date') ?? '');
        const skewSeconds = Number.isNaN(date) ? undefined : Math.round((date - (sent + received) / 2) / 1000);
        return { endpoint: host, route, reachable: true, status: response.status, elapsedMs: received - sent, ...(skewSeconds === undefined ? {} : { skewSeconds }) };
      } catch (error) {
        const connect = error instanceof UpstreamConnectError ? error : undefined;
        const problem = connect === undefined ? `no answer within ${timeoutMs} ms` : `cannot be reached${connect.route}`;
        return { endpoint: host, route, reachable: false, elapsedMs: now() - sent, problem, hint: connect?.hint(host) ?? 'check your network connection' };
      }
    }),
  );
}
