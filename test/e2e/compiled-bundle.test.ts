// bin/compiled-bundle.js: the CLI's bundle starts from the V8 code cache the build wrote, and runs
// as well without it or with one that does not fit.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { VERSION } from '../../src/version.js';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
const BUNDLE = join(ROOT, 'dist', 'tokend.cjs');
const { compile, cachePath } = createRequire(import.meta.url)('../../bin/compiled-bundle.js') as {
  compile: (entry: string, cachedData?: Buffer) => { cachedDataRejected?: boolean };
  cachePath: (entry: string) => string;
};

test('the code cache `npm run build` wrote is accepted by this node', () => {
  const script = compile(BUNDLE, readFileSync(cachePath(BUNDLE)));
  assert.equal(script.cachedDataRejected, false);
});

/** A copy of the installed layout (bin/, dist/tokend.cjs, package.json, node_modules) that a test may spoil. */
function installedCopy(): string {
  const root = mkdtempSync(join(tmpdir(), 'tokend-bundle-'));
  mkdirSync(join(root, 'bin'));
  mkdirSync(join(root, 'dist'));
  for (const file of ['bin/tokend.js', 'bin/compiled-bundle.js', 'bin/package.json', 'dist/tokend.cjs', 'package.json']) copyFileSync(join(ROOT, file), join(root, file));
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  return root;
}

test('without a code cache, with a corrupt one, and with one for another bundle, the CLI runs all the same', async () => {
  const root = installedCopy();
  const version = async () => (await run(process.execPath, [join(root, 'bin', 'tokend.js'), '--version'])).stdout.trim();
  assert.equal(await version(), VERSION, 'no cache');
  writeFileSync(join(root, 'dist', 'tokend.cjs.cache'), Buffer.alloc(4096, 7));
  assert.equal(await version(), VERSION, 'a corrupt cache');
  copyFileSync(cachePath(BUNDLE), join(root, 'dist', 'tokend.cjs.cache'));
  writeFileSync(join(root, 'dist', 'tokend.cjs'), `${readFileSync(BUNDLE, 'utf8')}\n// another build\n`);
  assert.equal(await version(), VERSION, 'a cache of another bundle');
});
