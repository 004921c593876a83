#!/usr/bin/env node
// Runs every test file under test/ with node's test runner (TypeScript through tsx). Node 20's
// runner takes no globs, so the files are listed here.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
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

// Arguments starting with `--` go to node's test runner (e.g. `--test-reporter=...`); the rest select files.
const runnerFlags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const all = testFiles(join(root, 'test'));
const selected = only.length > 0 ? all.filter((f) => only.some((o) => f.includes(o))) : all;
// Fast and narrow first, so a broken behaviour is reported within seconds. Node's runner sorts the
// files it is given, so each group is a run of its own; test/final/ reads what the others left.
const groups = ['test/unit/', 'test/integration/', 'test/e2e/'].map((prefix) => selected.filter((f) => f.startsWith(prefix)));
const rest = selected.filter((f) => !f.startsWith('test/final/') && !groups.some((group) => group.includes(f)));
const last = selected.filter((f) => f.startsWith('test/final/'));

const artifacts = mkdtempSync(join(tmpdir(), 'tokend-test-'));
const env = { ...process.env, TOKEND_TEST_ARTIFACTS: artifacts };
const run = (files) =>
  files.length === 0
    ? 0
    : // A hang fails the run with the test's name within two minutes instead of holding CI.
      spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', `--test-timeout=${TEST_TIMEOUT_MS}`, ...runnerFlags, ...files], {
        cwd: root,
        env,
        stdio: 'inherit',
      }).status ?? 1;

let status = 0;
for (const files of [...groups, rest]) status = run(files) || status;
if (status === 0) status = run(last);
if (status === 0) rmSync(artifacts, { recursive: true, force: true });
else console.error(`test artifacts (logs) kept in ${artifacts}`);
process.exit(status);
