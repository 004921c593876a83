// The default reporter of `npm test`: every failure in full as it happens (name, file, assertion,
// stack, and what the file printed), then one line per test file and the group's counts, which are
// also appended to TOKEND_TEST_COUNTS for run-tests.js to total. `npm test -- --verbose` uses node's
// spec reporter instead.
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';
import { inspect } from 'node:util';

const root = new URL('..', import.meta.url).pathname;

export default async function* compactReporter(source) {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  const files = new Map();
  const output = new Map();
  const started = Date.now();
  for await (const event of source) {
    const data = event.data ?? {};
    const file = data.file === undefined ? '(unknown file)' : relative(root, data.file);
    if (event.type === 'test:stdout' || event.type === 'test:stderr') {
      output.set(file, (output.get(file) ?? '') + data.message);
      continue;
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    // A suite's own failure (its body or a `before` hook threw) is a failure; one that only reports
    // failing tests inside it is not counted twice.
    if (data.details?.error?.failureType === 'subtestsFailed') continue;
    if (data.details?.type === 'suite' && event.type === 'test:pass') continue;
    if (!files.has(file)) files.set(file, { passed: 0, failed: 0, skipped: 0 });
    const stats = files.get(file);
    if (data.skip !== undefined || data.todo !== undefined) {
      stats.skipped++;
      counts.skipped++;
    } else if (event.type === 'test:pass') {
      stats.passed++;
      counts.passed++;
    } else {
      // A failure is printed in full at once, with what its file printed so far.
      stats.failed++;
      counts.failed++;
      const printed = output.get(file);
      yield `${describeFailure(data, file)}${printed ? `\n  output of ${file} so far:\n${indent(printed.slice(-4000), '    ')}\n` : ''}`;
    }
  }
  for (const [file, stats] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const extra = `${stats.failed > 0 ? `, ${stats.failed} failed` : ''}${stats.skipped > 0 ? `, ${stats.skipped} skipped` : ''}`;
    yield `${stats.failed > 0 ? '✖' : '✔'} ${file}: ${stats.passed} passed${extra}\n`;
  }
  yield `  ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped (${((Date.now() - started) / 1000).toFixed(1)} s)\n`;
  if (process.env.TOKEND_TEST_COUNTS) appendFileSync(process.env.TOKEND_TEST_COUNTS, `${JSON.stringify(counts)}\n`);
}

function describeFailure(data, file) {
  const error = data.details?.error;
  const cause = error?.cause ?? error;
  const text = cause instanceof Error ? inspect(cause, { depth: 4 }) : String(cause?.message ?? cause ?? 'failed');
  // A file that fails outside any test (an import error) is reported under its own path.
  const name = data.file !== undefined && data.name === data.file ? '(the file itself)' : data.name;
  return `\n✖ FAILED: ${name}\n  in ${file}${data.line === undefined ? '' : `:${data.line}`}\n${indent(text, '  ')}\n`;
}

function indent(text, prefix) {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => prefix + line)
    .join('\n');
}
