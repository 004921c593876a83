#!/usr/bin/env node
// Writes docs/reliability.md from the figures the reliability suites recorded (test/helpers/figures.ts)
// in one run: `node scripts/reliability-report.js ARTIFACTS_DIR [OUTPUT]`. Run by
// `npm run reliability`; the document is never edited by hand.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

export function readFigures(artifacts) {
  const dir = join(artifacts, 'figures');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .flatMap((name) => readFileSync(join(dir, name), 'utf8').split('\n'))
    .filter(Boolean)
    .flatMap((line) => {
      try {
        return [JSON.parse(line)];
      } catch {
        return []; // a line cut short by a killed test file
      }
    });
}

const sum = (items, key) => items.reduce((total, item) => total + item[key], 0);
const groupBy = (items, key) => {
  const groups = new Map();
  for (const item of items) groups.set(item[key], [...(groups.get(item[key]) ?? []), item]);
  return [...groups].sort(([a], [b]) => String(a).localeCompare(String(b)));
};
const table = (header, rows) => [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');

export function renderReport(figures, { date = new Date(), machine = describeMachine() } = {}) {
  const of = (kind) => figures.filter((figure) => figure.kind === kind);
  const faults = of('fault');
  const inputs = of('bad-input');
  const loads = of('load');
  const attacks = of('attack');
  const searches = of('secret-search');
  const out = [
    '# Reliability figures',
    '',
    `Written by \`scripts/reliability-report.js\` from what the suites themselves recorded in one run of \`npm run reliability\`, on ${date.toISOString().slice(0, 10)}, ${machine}. Not edited by hand: run \`npm run reliability\` to refresh it. What each suite does and which test proves what: [security.md](security.md#threat-model).`,
    '',
    '## Faults injected and survived',
    '',
    `${faults.length} faults injected, ${faults.filter((f) => f.survived).length} survived: the caller got a clear answer, the daemon kept answering, and the account worked again by itself once the fault was gone (after a new login where the grant itself died). A fault counts as survived only when every assertion of its test passed, and this page is written only when the whole suite passed.`,
    '',
    table(
      ['class', 'injected', 'survived'],
      groupBy(faults, 'faultClass').map(([name, items]) => [name, items.length, items.filter((f) => f.survived).length]),
    ),
    '',
    ...groupBy(faults, 'faultClass').flatMap(([name, items]) => [
      `### ${name}`,
      '',
      table(['fault', 'what the caller sees', 'what the log says', 'survived'], items.map((f) => [f.name, f.caller ?? '', f.log ?? '', f.survived ? 'yes' : '**no**'])),
      '',
    ]),
    '## Bad inputs',
    '',
    `${sum(inputs, 'cases')} bad inputs tried; ${sum(inputs, 'crashes')} crashes, ${sum(inputs, 'unexplained5xx')} answers of 5xx without a cause, ${sum(inputs, 'leaks')} answers that showed internals.`,
    '',
    table(
      ['surface', 'cases', 'crashes', 'unexplained 5xx', 'internals shown'],
      groupBy(inputs, 'surface').map(([name, items]) => [name, sum(items, 'cases'), sum(items, 'crashes'), sum(items, 'unexplained5xx'), sum(items, 'leaks')]),
    ),
    '',
    '## Load held',
    '',
    table(
      ['run', 'requests', 'concurrency', 'duration', 'errors', 'RSS before → after', 'fds before → after'],
      loads.map((l) => [l.name, l.requests, l.concurrency, `${l.durationSeconds.toFixed(l.durationSeconds < 10 ? 1 : 0)} s`, l.errors, `${l.rssBeforeMiB.toFixed(1)} → ${l.rssAfterMiB.toFixed(1)} MiB`, `${l.fdsBefore} → ${l.fdsAfter}`]),
    ),
    '',
    '## Attacks',
    '',
    `${attacks.length} attacks, ${sum(attacks, 'attempts')} attempts, ${attacks.filter((a) => a.succeeded).length} successes. Those not marked "browser or relay" were made by a real second local user; those were sent as the owner's browser or a relaying service would send them.`,
    '',
    table(['attack', 'attempts', 'succeeded'], attacks.map((a) => [a.name, a.attempts, a.succeeded ? '**yes**' : 'no'])),
    '',
    '## Secrets searched for',
    '',
    table(
      ['search', 'secrets', 'files', 'bytes', 'hits'],
      searches.map((s) => [s.name ?? 'every captured byte', s.secrets, s.files, s.bytes, s.hits]),
    ),
    '',
  ];
  return out.join('\n');
}

function describeMachine() {
  const cores = cpus();
  return `${cores.length} × ${cores[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [artifacts, output = join(root, 'docs', 'reliability.md')] = process.argv.slice(2);
  if (artifacts === undefined) {
    console.error('usage: node scripts/reliability-report.js ARTIFACTS_DIR [OUTPUT]');
    process.exit(2);
  }
  const figures = readFigures(artifacts);
  if (figures.length === 0) {
    console.error(`no figures in ${artifacts}/figures: run the suites through \`npm run reliability\``);
    process.exit(1);
  }
  writeFileSync(output, renderReport(figures));
  console.log(`wrote ${output} from ${figures.length} figures`);
}
