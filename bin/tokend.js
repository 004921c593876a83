#!/usr/bin/env node
// The installed entry point: the compiled CLI in dist/ (built by `npm ci` through the prepare script).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('tokend: the compiled code is missing (dist/cli/main.js)');
  console.error('hint: run `npm run build` (or `npm ci`) in the tokend checkout');
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
