/**
 * Figure 4: TokendAuthClient's cache hit, against a plain async function returning the same object:
 * what Google's Node clients pay per request for their token once it is cached in the process.
 */
import { performance } from 'node:perf_hooks';
import { TokendAuthClient } from '../../src/client/auth-client.js';
import { TokendClient } from '../../src/client/socket-client.js';
import type { Row } from '../lib/report.js';
import { alternate, median } from '../lib/rounds.js';
import type { BenchContext } from '../run.js';

export async function clientLibraryHit(ctx: BenchContext): Promise<Row[]> {
  const socketClient = new TokendClient({ socketPath: ctx.daemon.socket });
  let roundTrips = 0;
  const counted = { getToken: (options: Parameters<TokendClient['getToken']>[0]) => (roundTrips++, socketClient.getToken(options)) };
  const client = new TokendAuthClient({ scopes: 'bigquery', client: counted });
  const first = await client.getAccessToken();
  // eslint-disable-next-line @typescript-eslint/require-await -- the baseline is the plainest async function there is
  const plain = async () => first;
  const calls = ctx.quick ? 20_000 : 200_000;
  const rate = (call: () => Promise<unknown>) => async () => {
    const started = performance.now();
    for (let i = 0; i < calls; i++) await call();
    return calls / ((performance.now() - started) / 1000);
  };
  const tripsBefore = roundTrips;
  const rounds = await alternate(ctx.rounds * 2, { client: rate(() => client.getAccessToken()), plain: rate(plain) });
  return [
    {
      figure: '4 Node client library',
      case: 'TokendAuthClient.getAccessToken(), cached',
      unit: 'calls/s',
      tokend: median(rounds.client),
      baseline: median(rounds.plain),
      baselineName: 'async function',
      target: { kind: 'ratio', op: '>=', value: 0.5 },
    },
    {
      figure: '4 Node client library',
      case: `socket round trips during ${rounds.client.length * calls} cached calls`,
      unit: '',
      tokend: roundTrips - tripsBefore,
      target: { kind: 'absolute', op: '==', value: 0 },
    },
  ];
}
