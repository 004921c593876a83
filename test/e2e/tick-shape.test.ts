// src/tick-shape.ts in a real `tokend serve`: node's nextTick keeps its fast path across garbage
// collections. V8's own view of the feedback (%DebugPrint, with --allow-natives-syntax) is the
// observable; a timing would be noise here.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIN, daemonDirs, daemonEnv } from '../helpers/daemon-process.js';

/**
 * Preloaded into the process under test: on SIGUSR2 it runs two full collections while no tick is
 * queued, makes ticks again, prints how V8 now sees the four stores of nextTick's object literal,
 * and exits.
 */
const PROBE = `data:text/javascript,${encodeURIComponent(`
process.on('SIGUSR2', () => {
  gc(); gc();
  let left = 50;
  const step = () => {
    if (--left > 0) return process.nextTick(step);
    %DebugPrint(process.nextTick);
    process.exit(0);
  };
  step();
});
process.stderr.write('probe ready\\n');
`)}`;

/**
 * Runs `args` under the probe, probes once `ready` shows on stderr, and returns the four states.
 * stdout is a file: V8 prints through C's stdio, which loses output on node's non-blocking pipes.
 */
async function probedStates(args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<string[]> {
  const outPath = join(mkdtempSync(join(tmpdir(), 'tokend-tick-')), 'stdout');
  const out = openSync(outPath, 'w');
  const child = spawn(process.execPath, ['--expose-gc', '--allow-natives-syntax', `--import=${PROBE}`, ...args], { env, stdio: ['ignore', out, 'pipe'] });
  closeSync(out);
  let stderr = '';
  let probed = false;
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (!probed && ready.test(stderr)) probed = child.kill('SIGUSR2');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, `the probe did not finish:\n${stderr}`);
  return [...readFileSync(outPath, 'utf8').matchAll(/slot #\d+ DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((match) => match[1]!);
}

test('without a pinned tick, node 20 marks nextTick megamorphic after a collection (what src/tick-shape.ts guards against)', async () => {
  // A plain node process that made ticks, then idles. Should this pass as monomorphic one day, the
  // node in use no longer needs the pin, and src/tick-shape.ts can go.
  const states = await probedStates(['-e', 'for (let i = 0; i < 100; i++) process.nextTick(() => {}); setInterval(() => {}, 1000);'], process.env, /probe ready/);
  assert.equal(states.length, 4, 'nextTick builds its tick object with four stores');
  assert.ok(states.includes('MEGAMORPHIC'), `expected the collection to clear the feedback: ${states.join(', ')}`);
});

test('tokend serve keeps nextTick monomorphic across full collections', async () => {
  const dirs = daemonDirs();
  const states = await probedStates([BIN, 'serve', '--socket', dirs.socket], daemonEnv(dirs, { TOKEND_STORE: 'memory' }), /"event":"listening"/);
  assert.deepEqual(states, ['MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC']);
});
