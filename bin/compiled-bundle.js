// Loads dist/tokend.cjs with the V8 code cache that `npm run build` wrote next to it
// (dist/tokend.cjs.cache): V8 then skips parsing the whole bundle, ~8 ms of every command
// (docs/performance.md). A cache that does not match this node, its flags or the bundle is rejected
// by V8 and the bundle is compiled as usual. The cache is as trusted as the bundle: both are files
// of this installation, written by its build.
const { existsSync, readFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname } = require('node:path');
const vm = require('node:vm');

/** node's own CommonJS wrapper, so the bundle sees what a required file sees. */
function wrapped(source) {
  return `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
}

function compile(entry, cachedData) {
  // The bundle has no import() (scripts/bundle-cli.js turns them into require()), so it needs no ES
  // module loader.
  return new vm.Script(wrapped(readFileSync(entry, 'utf8')), { filename: entry, cachedData });
}

function cachePath(entry) {
  return `${entry}.cache`;
}

/** The bundle's exports, as require(entry) would give them. */
function load(entry) {
  const cache = cachePath(entry);
  const script = compile(entry, existsSync(cache) ? readFileSync(cache) : undefined);
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(entry), module, entry, dirname(entry));
  return module.exports;
}

module.exports = { compile, cachePath, load };
