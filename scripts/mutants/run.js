#!/usr/bin/env node
// `npm run mutants [-- ID...] [--no-control] [--write-doc]`: applies each mutation of mutants.js to a
// copy of the last commit, builds it, and runs the whole suite (CI=true) until the first
// test fails. A mutation that no test notices is a gap in the tests. Not part of `npm test`: the
// full list takes about an hour on two cores. Exit status 1 when any mutation survived.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { mutants } from './mutants.js';

const root = new URL('../..', import.meta.url).pathname;
const args = process.argv.slice(2);
const wanted = args.filter((a) => !a.startsWith('--'));
const withControl = !args.includes('--no-control');
const writeDoc = args.includes('--write-doc');
/** A mutant that has not been caught by then counts as surviving (a hang is a gap too). */
const PER_RUN_LIMIT_MS = 10 * 60_000;

const selected = wanted.length === 0 ? mutants : mutants.filter((m) => wanted.includes(m.id));
if (selected.length !== (wanted.length === 0 ? mutants.length : wanted.length)) {
  console.error(`unknown mutant id among: ${wanted.join(' ')}`);
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'tokend-mutants-'));
// The cross-user tests run programs of this tree as another user, and put files in TMPDIR for it.
chmodSync(work, 0o755);
const tree = join(work, 'tree');
execFileSync('mkdir', ['-p', tree]);
// The committed tree (HEAD), not the work in progress.
execFileSync('bash', ['-c', `git archive HEAD | tar -C ${JSON.stringify(tree)} -xf -`], { cwd: root });
symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'));

for (const m of selected) {
  const text = readFileSync(join(tree, m.file), 'utf8');
  const count = text.split(m.from).length - 1;
  if (count !== 1) {
    console.error(`mutant ${m.id}: expected its text once in ${m.file}, found it ${count} times; update scripts/mutants/mutants.js`);
    process.exit(2);
  }
}

const results = [];
if (withControl) {
  const control = await runSuite('control (no mutation)');
  console.log(`control: ${control.outcome} in ${seconds(control.elapsedMs)}`);
  if (control.outcome !== 'passed') {
    console.error('the unmutated suite does not pass; fix that first', control.failure ?? '');
    process.exit(2);
  }
}
for (const m of selected) {
  const path = join(tree, m.file);
  const original = readFileSync(path, 'utf8');
  writeFileSync(path, original.replace(m.from, m.to));
  try {
    const result = await runSuite(m.id);
    results.push({ ...m, ...result });
    const killer = result.failure === undefined ? '' : ` by "${result.failure.name}" (${result.failure.file ?? '?'}, the test took ${seconds(result.failure.durationMs)})`;
    console.log(`${m.id}: ${result.outcome} after ${seconds(result.elapsedMs)}${killer}`);
  } finally {
    writeFileSync(path, original);
  }
}

const survived = results.filter((r) => r.outcome !== 'killed');
const table = markdownTable(results);
console.log(`\n${table}`);
writeFileSync(join(work, 'results.json'), JSON.stringify(results, null, 2));
if (writeDoc) writeResultsDoc(table);
console.log(`\n${results.length - survived.length} of ${results.length} mutants killed; results in ${join(work, 'results.json')}`);
rmSync(tree, { recursive: true, force: true });
process.exit(survived.length === 0 ? 0 : 1);

/** Builds the tree as it is now and runs the suite until its first failing test. */
async function runSuite(label) {
  const started = Date.now();
  const build = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: tree, encoding: 'utf8' });
  if (build.status !== 0) return { outcome: 'does not build', elapsedMs: Date.now() - started, detail: build.stdout.slice(0, 500) };
  const marker = `${label}-${process.pid}-${Date.now()}`;
  const tmp = mkdtempSync(join(work, 't'));
  chmodSync(tmp, 0o1777); // as /tmp is
  const child = spawn(
    process.execPath,
    ['scripts/run-tests.js', `--test-reporter=${join(root, 'scripts/mutants/first-failure-reporter.js')}`, '--test-reporter-destination=stdout'],
    { cwd: tree, env: { ...process.env, CI: 'true', TMPDIR: tmp, TOKEND_MUTANT_RUN: marker }, stdio: ['ignore', 'pipe', 'ignore'], detached: true },
  );
  const outcome = await new Promise((resolve) => {
    let failure;
    const limit = setTimeout(() => resolve({ outcome: 'survived (no failure within the time limit)' }), PER_RUN_LIMIT_MS);
    createInterface({ input: child.stdout }).on('line', (line) => {
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      if (event.event === 'fail' && failure === undefined) {
        failure = event;
        clearTimeout(limit);
        resolve({ outcome: label.startsWith('control') ? 'failed' : 'killed', failure });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(limit);
      if (failure !== undefined) return;
      resolve(code === 0 ? { outcome: label.startsWith('control') ? 'passed' : 'survived' } : { outcome: `suite exited ${code} with no failing test` });
    });
  });
  const elapsedMs = Date.now() - started;
  stopEverything(child, marker);
  // A browser killed a moment ago may still be writing its profile.
  try {
    rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  } catch (error) {
    console.error(`could not remove ${tmp}: ${error.message}`);
  }
  return { ...outcome, elapsedMs };
}

/** The runner, and every process a test started (daemons, keyrings, browsers), whatever their session. */
function stopEverything(child, marker) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`TOKEND_MUTANT_RUN=${marker}`)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // exited, or not ours to read
    }
  }
}

function markdownTable(rows) {
  const lines = ['| mutation | file | outcome | first failing test | test time | run time |', '|---|---|---|---|---|---|'];
  for (const r of rows) {
    const test = r.failure === undefined ? '—' : `${r.failure.name} (${(r.failure.file ?? '').replace(`${tree}/`, '')})`;
    const testTime = r.failure === undefined ? '—' : seconds(r.failure.durationMs);
    lines.push(`| \`${r.id}\` | ${r.file} | ${r.outcome} | ${test.replace(/\|/g, '\\|')} | ${testTime} | ${seconds(r.elapsedMs)} |`);
  }
  return lines.join('\n');
}

function writeResultsDoc(table) {
  const path = join(root, 'docs/mutation-testing.md');
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const marker = '<!-- results -->';
  const head = text.includes(marker) ? text.slice(0, text.indexOf(marker) + marker.length) : `${text}\n${marker}`;
  const stamp = `Run of ${new Date().toISOString().slice(0, 10)} on ${process.platform}, Node ${process.version}:`;
  writeFileSync(path, `${head}\n\n${stamp}\n\n${table}\n`);
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}
