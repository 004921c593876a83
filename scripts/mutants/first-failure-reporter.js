// A node:test reporter for the mutation run: one JSON line per failing test (not for the suites
// that fail only because a test inside them did), and one at the end with the counts.
export default async function* firstFailureReporter(source) {
  let passed = 0;
  let failed = 0;
  for await (const event of source) {
    if (event.type === 'test:pass' && event.data.details?.type !== 'suite') passed++;
    if (event.type !== 'test:fail') continue;
    const { name, file, details } = event.data;
    const error = details?.error;
    if (error?.failureType === 'subtestsFailed') continue;
    failed++;
    const cause = error?.cause ?? error;
    yield `${JSON.stringify({
      event: 'fail',
      name,
      file,
      durationMs: Math.round(details?.duration_ms ?? 0),
      message: String(cause?.message ?? cause ?? '').split('\n')[0].slice(0, 300),
    })}\n`;
  }
  yield `${JSON.stringify({ event: 'end', passed, failed })}\n`;
}
