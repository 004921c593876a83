#!/usr/bin/env node
// Bundles the compiled CLI (dist/cli/main.js, from tsc) into one CommonJS file, dist/tokend.cjs,
// which bin/tokend.js loads. Node 20 starts a CommonJS file ~12 ms sooner than the same code as ES
// modules (docs/performance.md): that is most of what `tokend token` costs over `node -e 0`.
// Packages stay outside the bundle and load, as before, only on the paths that need them. Then it
// writes V8's code cache for the bundle (bin/compiled-bundle.js reads it).
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const bundle = `${root}dist/tokend.cjs`;

await build({
  entryPoints: [`${root}dist/cli/main.js`],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  packages: 'external',
  // import() of a package becomes require(): every package tokend loads lazily is CommonJS, and a
  // script compiled with a code cache (bin/compiled-bundle.js) has no ES module loader of its own.
  supported: { 'dynamic-import': false },
  // Every module of the bundle sees the bundle's own URL; it sits where dist/*.js do, one level
  // below the package root, which is all src/package-root.ts relies on.
  define: { 'import.meta.url': '__tokendBundleUrl' },
  banner: { js: "const __tokendBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});

const { compile, cachePath } = createRequire(import.meta.url)('../bin/compiled-bundle.js');
writeFileSync(cachePath(bundle), compile(bundle).createCachedData());
