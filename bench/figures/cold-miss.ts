/**
 * Figure 5: 1,000 concurrent requests for a scope set nobody asked for yet. Exactly one refresh goes
 * upstream; what each caller waits beyond the upstream's own answer time is tokend's share.
 */
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { systemClock } from '../../src/clock.js';
import { parseClientSecrets } from '../../src/oauth/client-config.js';
import { ConsentSession } from '../../src/oauth/consent.js';
import { TokenEndpoint } from '../../src/oauth/token-endpoint.js';
import { consentViaHttp } from '../../test/helpers/consent-driver.js';
import { percentile } from '../lib/load.js';
import type { Row } from '../lib/report.js';
import { median } from '../lib/rounds.js';
import type { BenchContext } from '../run.js';

const G = 'https://www.googleapis.com/auth/';
const CALLERS = 1_000;

/** A refresh token of the bench's own, from a consent in this process, for the direct baseline. */
async function ownRefreshToken(ctx: BenchContext): Promise<string> {
  const session = await ConsentSession.start<string>({
    client: parseClientSecrets(ctx.standin.clientSecretsJson()),
    scopes: [`${G}bigquery`, `${G}cloud-platform`, `${G}devstorage.read_only`, 'openid', 'email'],
    retryCommand: 'tokend login',
    timeoutMs: 30_000,
    clock: systemClock,
    tokenEndpoint: new TokenEndpoint(),
    finish: ({ grant }) => Promise.resolve({ value: grant.refreshToken.reveal(), page: { outcome: 'ok' as const, heading: 'ok', lines: [] } }),
  });
  await consentViaHttp(session.authUrl);
  return session.result;
}

/** Scope sets no request asked for before: every subset of three APIs, with and without identity scopes. */
function freshScopeSets(): string[] {
  const apis = [`${G}bigquery`, `${G}cloud-platform`, `${G}devstorage.read_only`];
  const sets: string[] = [];
  for (const identity of ['openid', 'email', 'openid,email']) {
    for (let mask = 1; mask < 8; mask++) sets.push([...apis.filter((_, bit) => mask & (1 << bit)), identity].join(','));
  }
  return sets;
}

function getAll(socket: string, path: string, count: number): Promise<number[]> {
  const request = `GET ${path} HTTP/1.1\r\nHost: localhost\r\nMetadata-Flavor: Google\r\nConnection: close\r\n\r\n`;
  return Promise.all(
    Array.from({ length: count }, () => new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const connection = connect(socket, () => connection.write(request));
      let answer = '';
      connection.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      connection.on('error', reject);
      connection.on('close', () => (answer.startsWith('HTTP/1.1 200') ? resolve(performance.now() - started) : reject(new Error(answer.slice(0, 300)))));
    })),
  );
}

export async function coldMiss(ctx: BenchContext): Promise<Row[]> {
  const refreshToken = await ownRefreshToken(ctx);
  const direct = async (scopes: string) => {
    const started = performance.now();
    const answer = await fetch(ctx.standin.tokenUri, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, scope: scopes.replace(/,/g, ' '), client_id: ctx.standin.clientId, client_secret: ctx.standin.clientSecret }),
    });
    await answer.text();
    return performance.now() - started;
  };
  const sets = freshScopeSets();
  const rounds = Math.min(sets.length / 2, ctx.quick ? 2 : 6);
  const added: number[] = [];
  const upstreamTimes: number[] = [];
  const upstreamCalls: number[] = [];
  for (let round = 0; round < rounds; round++) {
    // The upstream's own time for this kind of refresh, measured just before, on another fresh set.
    upstreamTimes.push(await direct(sets[2 * round + 1]!));
    const before = ctx.standin.stats.refreshGrants;
    const latencies = await getAll(ctx.daemon.socket, `/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(sets[2 * round]!)}`, CALLERS);
    upstreamCalls.push(ctx.standin.stats.refreshGrants - before);
    const upstream = upstreamTimes.at(-1)!;
    added.push(...latencies.map((latency) => latency - upstream));
  }
  const sorted = Float64Array.from(added).sort();
  const base = { figure: '5 cold miss, 1,000 concurrent callers' };
  return [
    { ...base, case: 'upstream refreshes per burst (every round)', unit: '', tokend: Math.max(...upstreamCalls), target: { kind: 'absolute', op: '==', value: 1 }, note: `rounds: ${upstreamCalls.join(', ')}` },
    { ...base, case: "upstream's own answer time", unit: 'ms', tokend: median(upstreamTimes) },
    { ...base, case: 'added latency p50', unit: 'ms', tokend: percentile(sorted, 0.5) },
    { ...base, case: 'added latency p99', unit: 'ms', tokend: percentile(sorted, 0.99) },
  ];
}
