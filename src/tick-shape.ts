import { executionAsyncResource } from 'node:async_hooks';

let held: object | undefined;

/**
 * Keeps one of node's own nextTick objects alive for the life of the process, so that V8 never frees
 * the hidden classes ("maps") of that shape. Call it first thing: it protects from then on.
 *
 * Node 20's `process.nextTick` makes each tick an object literal with two computed symbol keys, and
 * V8 remembers the maps those stores go through only weakly. A full collection at a moment when no
 * tick is queued (the daemon's start, which loads fastify and pino, has several) frees them; the next
 * tick then finds its feedback cleared, marks three of the four stores megamorphic, and that state
 * never leaves: every later tick builds its object in V8's runtime, 3 to 6 times slower. An HTTP
 * request takes several ticks; under load this was 11 % of the daemon's CPU time and half of its
 * cache-hit throughput (docs/performance.md). One live tick object keeps the whole chain of maps
 * alive through their back pointers, and the feedback stays valid.
 */
export function pinNextTickShape(): void {
  if (held !== undefined) return;
  process.nextTick(() => {
    held ??= executionAsyncResource();
  });
}
