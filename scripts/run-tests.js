#!/usr/bin/env node
// Runs every test file under test/ with node's test runner (TypeScript through tsx). Node 20's
// runner takes no globs, so the files are listed here.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
/** The longest file takes about 40 s here. */
const TEST_TIMEOUT_MS = 120_000;

function testFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...testFiles(path));
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

// `--verbose`: node's spec reporter (every test). Other arguments starting with `--` go to node's
// test runner (e.g. `--test-reporter=...`); the rest select files.
const args = process.argv.slice(2);
const verbose = args.includes('--verbose') || process.env.TOKEND_TEST_VERBOSE === '1';
// `--write-figures` (npm run reliability): docs/reliability.md from what the suites recorded, when all pass.
const writeFigures = args.includes('--write-figures');
const passed = args.filter((a) => a.startsWith('--') && a !== '--verbose' && a !== '--write-figures');
const runnerFlags = passed.some((a) => a.startsWith('--test-reporter'))
  ? passed
  : verbose
    ? ['--test-reporter=spec', ...passed]
    : [`--test-reporter=${join(root, 'scripts', 'compact-reporter.js')}`, '--test-reporter-destination=stdout', ...passed];
const only = args.filter((a) => !a.startsWith('--'));
const all = testFiles(join(root, 'test'));
const selected = only.length > 0 ? all.filter((f) => only.some((o) => f.includes(o))) : all;
if (selected.length === 0) {
  console.error(`no test file matches ${only.join(' ')}`);
  process.exit(2);
}
// Fast and narrow first, so a broken behaviour is reported within seconds. Node's runner sorts the
// files it is given, so each group is a run of its own; test/final/ reads what the others left.
const groups = ['test/unit/', 'test/integration/', 'test/e2e/'].map((prefix) => selected.filter((f) => f.startsWith(prefix)));
// The load suite saturates both cores: it runs alone, after everything else.
const loadFiles = selected.filter((f) => f.startsWith('test/load/'));
const rest = selected.filter((f) => !f.startsWith('test/final/') && !loadFiles.includes(f) && !groups.some((group) => group.includes(f)));
const last = selected.filter((f) => f.startsWith('test/final/'));

const artifacts = mkdtempSync(join(tmpdir(), 'tokend-test-'));
const countsFile = join(artifacts, 'counts.jsonl');
const env = { ...process.env, TOKEND_TEST_ARTIFACTS: artifacts, TOKEND_TEST_COUNTS: countsFile };
const started = Date.now();
const run = (files, concurrency = 2, timeoutMs = TEST_TIMEOUT_MS) =>
  files.length === 0
    ? 0
    : // A hang fails the run with the test's name within two minutes instead of holding CI.
      spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, `--test-timeout=${timeoutMs}`, ...runnerFlags, ...files], {
        cwd: root,
        env,
        stdio: 'inherit',
      }).status ?? 1;

let status = 0;
for (const files of [...groups, rest]) status = run(files) || status;
// The soak (TOKEND_LOAD_SECONDS) runs longer than any other test: its bound grows with it.
const loadSeconds = Number(process.env.TOKEND_LOAD_SECONDS ?? 60);
status = run(loadFiles, 1, Math.max(TEST_TIMEOUT_MS, (loadSeconds + 150) * 1000)) || status;
if (status === 0) status = run(last);
if (existsSync(countsFile)) {
  const total = { passed: 0, failed: 0, skipped: 0 };
  for (const line of readFileSync(countsFile, 'utf8').split('\n').filter(Boolean)) {
    for (const [key, value] of Object.entries(JSON.parse(line))) total[key] += value;
  }
  console.log(`\ntests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
if (status === 0 && writeFigures) {
  status = spawnSync(process.execPath, [join(root, 'scripts', 'reliability-report.js'), artifacts], { stdio: 'inherit' }).status ?? 1;
}
if (status === 0) rmSync(artifacts, { recursive: true, force: true });
else console.error(`test artifacts (logs) kept in ${artifacts}; \`npm test -- --verbose\` prints every test`);
process.exit(status);
