#!/usr/bin/env node
// The installed entry point: the CLI bundled into dist/tokend.cjs (built by `npm ci` through the
// prepare script). CommonJS on purpose (bin/package.json): it starts sooner than ES modules.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { load } = require('./compiled-bundle.js');

const entry = join(__dirname, '..', 'dist', 'tokend.cjs');
if (!existsSync(entry)) {
  console.error('tokend: the compiled code is missing (dist/tokend.cjs)');
  console.error('hint: run `npm run build` (or `npm ci`) in the tokend checkout');
  process.exit(1);
}
load(entry)
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code;
  });
