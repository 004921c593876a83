/** Test helper, not tokend: the compact reporter `npm test` uses by default. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const root = new URL('../..', import.meta.url).pathname;

test('test helper, not tokend: the compact reporter prints a failure in full, passing tests as counts only, and totals', async () => {
  const counts = join(mkdtempSync(join(tmpdir(), 'tokend-reporter-')), 'counts.jsonl');
  const run = promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--test', `--test-reporter=${join(root, 'scripts/compact-reporter.js')}`, '--test-reporter-destination=stdout', 'test/fixtures/one-failing.fixture.ts'],
    // Without NODE_TEST_CONTEXT, which would make the inner runner report to this one instead.
    { cwd: root, env: { ...withoutTestContext(process.env), TOKEND_TEST_COUNTS: counts } },
  );
  const failed = await run.then(() => undefined, (error: { code: number; stdout: string }) => error);
  assert.ok(failed !== undefined, 'the run fails');
  const out = failed.stdout;
  assert.match(out, /^✖ FAILED: fails on purpose$/m);
  assert.match(out, /the answers differ/);
  assert.match(out, /\+ {3}answer: 41\n {2}- {3}answer: 42/, 'the assertion diff');
  assert.match(out, /printed by the failing test/, 'what the file printed');
  assert.doesNotMatch(out, /passes quietly/, 'a passing test is only counted');
  assert.match(out, /^✖ test\/fixtures\/one-failing\.fixture\.ts: 1 passed, 1 failed$/m);
  assert.match(out, /^ {2}1 passed, 1 failed, 0 skipped \(/m);
  assert.deepEqual(JSON.parse(readFileSync(counts, 'utf8')), { passed: 1, failed: 1, skipped: 0 });
});

function withoutTestContext(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy.NODE_TEST_CONTEXT;
  return copy;
}
