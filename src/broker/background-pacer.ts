/** The span of one rate window. */
const SECOND_MS = 1_000;

/**
 * Spreads background refreshes over time. Tokens fetched together (a start, a prefetch, a burst of
 * new callers) would otherwise fall due together, lifetime after lifetime: each is armed a random
 * share of a window before its nominal time, and at most `perSecond` start in any second — one over
 * the limit waits for the next free slot. What callers ask for is never held back by this.
 */
export class BackgroundPacer {
  /** When each of the refreshes started in the last second started, oldest first. */
  private readonly started: number[] = [];

  constructor(
    private readonly perSecond: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** A time up to `windowMs` before `dueAt`, never before `earliest`. */
  jittered(dueAt: number, earliest: number, windowMs: number): number {
    const room = Math.max(0, Math.min(windowMs, dueAt - earliest));
    return dueAt - Math.floor(this.random() * room);
  }

  /** 0 when a refresh may start at `now` (it is counted); else how long until a slot frees up. */
  delayBeforeStart(now: number): number {
    while (this.started.length > 0 && this.started[0]! <= now - SECOND_MS) this.started.shift();
    if (this.started.length < this.perSecond) {
      this.started.push(now);
      return 0;
    }
    return this.started[0]! + SECOND_MS - now;
  }
}
