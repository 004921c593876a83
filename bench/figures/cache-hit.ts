/**
 * Figures 1 and 2: a cache hit over the Unix socket and over the metadata TCP listener, against bare
 * node:http answering the same headers and body on the same kind of socket.
 */
import { readFileSync } from 'node:fs';
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

/** CPU time (user and system) a process has used, in ms, from /proc (10 ms resolution). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'latin1').replace(/^.*\) /s, '').split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

type Round = LoadResult & { cpuUsPerRequest: number };

/** A server under test: where to send requests, and its pid, whose CPU time per request is counted. */
interface Server {
  target: Target;
  pid: number;
}

async function compare(ctx: BenchContext, subject: Server, baseline: Server, request: string, clients: number, keepAlive: boolean) {
  const load = (server: Server) => async (): Promise<Round> => {
    const before = cpuMs(server.pid);
    const result = await runLoad({ target: server.target, request, clients, durationMs: ctx.roundMs, keepAlive });
    return { ...result, cpuUsPerRequest: ((cpuMs(server.pid) - before) * 1000) / result.requests };
  };
  const rounds = await alternate(ctx.rounds, { tokend: load(subject), baseline: load(baseline) });
  for (const result of [...rounds.tokend, ...rounds.baseline]) {
    if (result.failures.length > 0) throw new Error(`failed requests: ${result.failures.join('; ')}`);
  }
  const pick = (results: Round[], key: 'perSecond' | 'p50Ms' | 'p99Ms' | 'cpuUsPerRequest') => median(results.map((result) => result[key]));
  return {
    perSecond: [pick(rounds.tokend, 'perSecond'), pick(rounds.baseline, 'perSecond')] as const,
    p50: [pick(rounds.tokend, 'p50Ms'), pick(rounds.baseline, 'p50Ms')] as const,
    p99: [pick(rounds.tokend, 'p99Ms'), pick(rounds.baseline, 'p99Ms')] as const,
    cpu: [pick(rounds.tokend, 'cpuUsPerRequest'), pick(rounds.baseline, 'cpuUsPerRequest')] as const,
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
      const figure = await compare(ctx, { target: { path: ctx.daemon.socket }, pid: ctx.daemon.child.pid! }, { target: { path }, pid: bare.child.pid! }, request, clients, true);
      const base = { figure: '1 cache hit, Unix socket', baselineName: 'bare node:http' };
      rows.push(
        { ...base, case: `${clients} keep-alive clients: throughput`, unit: 'req/s', tokend: figure.perSecond[0], baseline: figure.perSecond[1], ...(clients === 16 ? { target: { kind: 'ratio', op: '>=', value: 0.9 } as const } : {}) },
        { ...base, case: `${clients} clients: p50`, unit: 'ms', tokend: figure.p50[0], baseline: figure.p50[1] },
        { ...base, case: `${clients} clients: p99`, unit: 'ms', tokend: figure.p99[0], baseline: figure.p99[1], ...(clients === 16 ? { target: { kind: 'absolute', op: '<', value: 2 } as const } : {}) },
        { ...base, case: `${clients} clients: server CPU per request`, unit: 'µs', tokend: figure.cpu[0], baseline: figure.cpu[1] },
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
    const servers = [{ target: subject, pid: ctx.daemon.child.pid! }, { target: baseline, pid: bare.child.pid! }] as const;
    const kept = await compare(ctx, ...servers, request, 16, true);
    rows.push(
      { ...base, case: '16 keep-alive clients: throughput', unit: 'req/s', tokend: kept.perSecond[0], baseline: kept.perSecond[1], target: { kind: 'ratio', op: '>=', value: 0.8 } },
      { ...base, case: '16 keep-alive clients: p99', unit: 'ms', tokend: kept.p99[0], baseline: kept.p99[1] },
      { ...base, case: '16 keep-alive clients: server CPU per request', unit: 'µs', tokend: kept.cpu[0], baseline: kept.cpu[1] },
    );
    const closed = await compare(ctx, ...servers, requestFor(`127.0.0.1:${ctx.metadataPort}`, false), 16, false);
    rows.push(
      { ...base, case: '16 clients, Connection: close: throughput', unit: 'req/s', tokend: closed.perSecond[0], baseline: closed.perSecond[1], target: { kind: 'ratio', op: '>=', value: 0.6 } },
      { ...base, case: '16 clients, Connection: close: p99', unit: 'ms', tokend: closed.p99[0], baseline: closed.p99[1] },
      { ...base, case: '16 clients, Connection: close: server CPU per request', unit: 'µs', tokend: closed.cpu[0], baseline: closed.cpu[1] },
    );
  } finally {
    await bare.stop();
  }
  return rows;
}
