#!/usr/bin/env node
// Bundles the compiled CLI (dist/cli/main.js, from tsc) into one CommonJS file, dist/tokend.cjs,
// which bin/tokend.js loads. Node 20 starts a CommonJS file ~12 ms sooner than the same code as ES
// modules (docs/performance.md): that is most of what `tokend token` costs over `node -e 0`.
// Packages stay outside the bundle and load, as before, only on the paths that need them.
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;

await build({
  entryPoints: [`${root}dist/cli/main.js`],
  outfile: `${root}dist/tokend.cjs`,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  packages: 'external',
  // Every module of the bundle sees the bundle's own URL; it sits where dist/*.js do, one level
  // below the package root, which is all src/package-root.ts relies on.
  define: { 'import.meta.url': '__tokendBundleUrl' },
  banner: { js: "const __tokendBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
