/**
 * Figures 1 and 2: a cache hit over the Unix socket and over the metadata TCP listener, against bare
 * node:http answering the same headers and body on the same kind of socket.
 */
import { join } from 'node:path';
import { captureAnswer, startBaseline } from '../lib/baseline.js';
import { freePort } from '../../test/helpers/daemon-process.js';
import { runLoad, type LoadResult, type Target } from '../lib/load.js';
import type { Row } from '../lib/report.js';
import { alternate, median } from '../lib/rounds.js';
import type { BenchContext } from '../run.js';

const TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token?scopes=https://www.googleapis.com/auth/bigquery';

const requestFor = (host: string, keepAlive: boolean) =>
  `GET ${TOKEN_PATH} HTTP/1.1\r\nHost: ${host}\r\nMetadata-Flavor: Google\r\n${keepAlive ? '' : 'Connection: close\r\n'}\r\n`;

async function compare(ctx: BenchContext, subject: Target, baseline: Target, request: string, clients: number, keepAlive: boolean) {
  const load = (target: Target) => () => runLoad({ target, request, clients, durationMs: ctx.roundMs, keepAlive });
  const rounds = await alternate(ctx.rounds, { tokend: load(subject), baseline: load(baseline) });
  for (const result of [...rounds.tokend, ...rounds.baseline]) {
    if (result.failures.length > 0) throw new Error(`failed requests: ${result.failures.join('; ')}`);
  }
  const pick = (results: LoadResult[], key: 'perSecond' | 'p50Ms' | 'p99Ms') => median(results.map((result) => result[key]));
  return {
    perSecond: [pick(rounds.tokend, 'perSecond'), pick(rounds.baseline, 'perSecond')] as const,
    p50: [pick(rounds.tokend, 'p50Ms'), pick(rounds.baseline, 'p50Ms')] as const,
    p99: [pick(rounds.tokend, 'p99Ms'), pick(rounds.baseline, 'p99Ms')] as const,
  };
}

async function warm(ctx: BenchContext, targets: Target[], request: string): Promise<void> {
  // The JIT settles after some seconds of load; neither side is measured before.
  for (const target of targets) await runLoad({ target, request, clients: 16, durationMs: ctx.warmMs, keepAlive: true });
}

export async function cacheHitOverUnixSocket(ctx: BenchContext): Promise<Row[]> {
  const request = requestFor('localhost', true);
  const shape = await captureAnswer({ path: ctx.daemon.socket }, request);
  const path = join(ctx.daemon.root, 'bare-http.sock');
  const bare = await startBaseline('bare-http', { path }, shape);
  const rows: Row[] = [];
  try {
    await warm(ctx, [{ path: ctx.daemon.socket }, { path }], request);
    for (const clients of [1, 16, 64]) {
      const figure = await compare(ctx, { path: ctx.daemon.socket }, { path }, request, clients, true);
      const base = { figure: '1 cache hit, Unix socket', baselineName: 'bare node:http' };
      rows.push(
        { ...base, case: `${clients} keep-alive clients: throughput`, unit: 'req/s', tokend: figure.perSecond[0], baseline: figure.perSecond[1], ...(clients === 16 ? { target: { kind: 'ratio', op: '>=', value: 0.9 } as const } : {}) },
        { ...base, case: `${clients} clients: p50`, unit: 'ms', tokend: figure.p50[0], baseline: figure.p50[1] },
        { ...base, case: `${clients} clients: p99`, unit: 'ms', tokend: figure.p99[0], baseline: figure.p99[1], ...(clients === 16 ? { target: { kind: 'absolute', op: '<', value: 2 } as const } : {}) },
      );
    }
  } finally {
    await bare.stop();
  }
  return rows;
}

export async function cacheHitOverTcp(ctx: BenchContext): Promise<Row[]> {
  const port = await freePort();
  const subject = { host: '127.0.0.1', port: ctx.metadataPort };
  const baseline = { host: '127.0.0.1', port };
  const shape = await captureAnswer(subject, requestFor(`127.0.0.1:${ctx.metadataPort}`, true));
  const bare = await startBaseline('bare-http', { host: '127.0.0.1', port }, shape);
  const rows: Row[] = [];
  try {
    // Each side gets the Host header its listener expects (tokend's guard checks it; the baseline ignores it).
    const request = requestFor(`127.0.0.1:${ctx.metadataPort}`, true);
    await warm(ctx, [subject, baseline], request);
    const base = { figure: '2 cache hit, metadata TCP listener', baselineName: 'bare node:http' };
    const kept = await compare(ctx, subject, baseline, request, 16, true);
    rows.push(
      { ...base, case: '16 keep-alive clients: throughput', unit: 'req/s', tokend: kept.perSecond[0], baseline: kept.perSecond[1], target: { kind: 'ratio', op: '>=', value: 0.8 } },
      { ...base, case: '16 keep-alive clients: p99', unit: 'ms', tokend: kept.p99[0], baseline: kept.p99[1] },
    );
    const closed = await compare(ctx, subject, baseline, requestFor(`127.0.0.1:${ctx.metadataPort}`, false), 16, false);
    rows.push(
      { ...base, case: '16 clients, Connection: close: throughput', unit: 'req/s', tokend: closed.perSecond[0], baseline: closed.perSecond[1], target: { kind: 'ratio', op: '>=', value: 0.6 } },
      { ...base, case: '16 clients, Connection: close: p99', unit: 'ms', tokend: closed.p99[0], baseline: closed.p99[1] },
    );
  } finally {
    await bare.stop();
  }
  return rows;
}
