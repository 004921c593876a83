/**
 * `npm run bench`: what tokend costs a caller, each figure next to a baseline measured in the same
 * run, in alternating rounds (machines here are noisy: the ratios are the result). Prints a Markdown
 * table, writes bench/results.json and the generated part of docs/performance.md.
 *
 * BENCH_QUICK=1: short rounds, for trying the suite out (the figures are then rough).
 * BENCH_ONLY=unix,tcp,cli,client,miss,footprint,scale: only those figures (docs/performance.md is then left alone).
 */
import { writeFileSync } from 'node:fs';
import { freePort } from '../test/helpers/daemon-process.js';
import { startStandin, type StandinHandle } from '../test/helpers/oauth-standin.js';
import { cacheHitOverTcp, cacheHitOverUnixSocket } from './figures/cache-hit.js';
import { cliStart } from './figures/cli.js';
import { clientLibraryHit } from './figures/client.js';
import { coldMiss } from './figures/cold-miss.js';
import { footprint } from './figures/footprint.js';
import { scale } from './figures/scale.js';
import { login, startBenchDaemon, type BenchDaemon } from './lib/daemon.js';
import { machine, markdownTable, met, ratio, writeDocs, type Row } from './lib/report.js';

export interface BenchContext {
  standin: StandinHandle;
  /** Logged in to the stand-in (bigquery, cloud-platform, devstorage.read_only), metadata listener on. */
  daemon: BenchDaemon;
  metadataPort: number;
  quick: boolean;
  rounds: number;
  roundMs: number;
  warmMs: number;
}

const FIGURES: Record<string, (ctx: BenchContext) => Promise<Row[]>> = {
  unix: cacheHitOverUnixSocket,
  tcp: cacheHitOverTcp,
  cli: cliStart,
  client: clientLibraryHit,
  miss: coldMiss,
  footprint,
  scale,
};

const quick = process.env.BENCH_QUICK === '1';
const only = process.env.BENCH_ONLY?.split(',');
const settings = quick ? { rounds: 2, roundMs: 1_000, warmMs: 2_000 } : { rounds: 5, roundMs: 3_000, warmMs: 8_000 };

const standin = await startStandin({ artifactsDir: '' });
const metadataPort = await freePort();
const daemon = await startBenchDaemon({ env: { TOKEND_METADATA_PORT: String(metadataPort) } });
const rows: Row[] = [];
try {
  await login(daemon, standin, 'bigquery,cloud-platform,devstorage.read_only,openid,email');
  const ctx: BenchContext = { standin, daemon, metadataPort, quick, ...settings };
  for (const [name, figure] of Object.entries(FIGURES)) {
    if (only !== undefined && !only.includes(name)) continue;
    process.stderr.write(`bench: ${name}…\n`);
    rows.push(...(await figure(ctx)));
  }
} finally {
  await daemon.stop();
  await standin.stop();
}

const host = machine();
const described = `${settings.rounds} alternating rounds of ${settings.roundMs / 1000} s per load figure after ${settings.warmMs / 1000} s of warm-up${quick ? ' (BENCH_QUICK)' : ''}`;
console.log(markdownTable(rows));
writeFileSync(new URL('results.json', import.meta.url), `${JSON.stringify({ machine: host, settings, rows: rows.map((row) => ({ ...row, ratio: ratio(row), met: met(row) })) }, null, 2)}\n`);
if (only === undefined) writeDocs(new URL('../docs/performance.md', import.meta.url).pathname, rows, host, described);
const missed = rows.filter((row) => met(row) === false);
if (missed.length > 0) console.log(`\n${missed.length} target(s) missed: ${missed.map((row) => `${row.figure}: ${row.case}`).join('; ')}`);
