/**
 * Time, injected. Production code never calls Date.now() or setTimeout() for anything that decides
 * token freshness or schedules a refresh; it asks a Clock, so tests drive time instead of sleeping.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /**
   * Milliseconds since the epoch, as steady time (below): every duration tokend measures (a token's
   * age, a pause, a cooldown) is a difference of two of these.
   */
  now(): number;
  /** The wall clock as it reads now, for timestamps a person reads or a restart compares; never for durations. */
  wallTime(): number;
  /** Runs `callback` once, `delayMs` from now. Timers never keep the process alive. */
  setTimer(delayMs: number, callback: () => void): TimerHandle;
  /** Tells `listener` when the wall clock jumped by `ms` (see SteadyTime); returns the unsubscribe. */
  onJump?(listener: (ms: number) => void): () => void;
}

/** A change of the wall clock against the monotonic one smaller than this is noise, not a jump. */
const JUMP_MS = 5_000;

/**
 * The wall clock, made safe to measure durations with. The wall clock jumps (NTP steps, a user setting
 * it) and the monotonic clock stops while the machine sleeps; neither alone can say how old a token
 * is. Steady time follows the monotonic clock, and moves on with the wall clock when that jumps
 * forward: it never runs back (a token does not look younger after the clock is set back), and it
 * counts the time asleep (a token is not served after a night's suspend as if no time had passed). A
 * wall clock set forward makes tokens look older, which only refreshes them early. Timestamps that
 * are stored or shown come from the wall clock itself (Clock.wallTime).
 */
export class SteadyTime {
  /** steady = monotonic + lead. */
  private lead: number;
  /** The wall clock's lead over the monotonic clock when it last jumped (or at the start). */
  private reference: number;
  private readonly listeners = new Set<(ms: number) => void>();

  constructor(
    private readonly wall: () => number,
    private readonly monotonic: () => number,
  ) {
    this.lead = wall() - monotonic();
    this.reference = this.lead;
  }

  now(): number {
    const elapsed = this.monotonic();
    const jump = this.wall() - elapsed - this.reference;
    if (Math.abs(jump) >= JUMP_MS) {
      this.reference += jump;
      if (jump > 0) this.lead += jump;
      for (const listener of this.listeners) listener(jump);
    }
    return elapsed + this.lead;
  }

  /** `listener` hears of every jump of the wall clock (forward: set ahead, or a suspend ended), noticed at the next now(). */
  onJump(listener: (ms: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** setTimeout fires at once (after a warning) when asked to wait longer than this, about 24.8 days. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

// performance.now() is CLOCK_MONOTONIC on Linux: it does not count a suspend.
const systemTime = new SteadyTime(() => Date.now(), () => performance.now());

export const systemClock: Clock = {
  now: () => systemTime.now(),
  wallTime: () => Date.now(),
  onJump: (listener) => systemTime.onJump(listener),
  setTimer(delayMs, callback) {
    let timer: NodeJS.Timeout;
    const arm = (left: number) => {
      timer = setTimeout(() => (left > MAX_TIMEOUT_MS ? arm(left - MAX_TIMEOUT_MS) : callback()), Math.min(Math.max(0, left), MAX_TIMEOUT_MS));
      timer.unref();
    };
    arm(delayMs);
    return { cancel: () => clearTimeout(timer) };
  },
};

interface PendingTimer {
  due: number;
  seq: number;
  callback: () => void;
}

/**
 * A clock that only moves when told to, with a wall and a monotonic clock of its own: advance() moves
 * both and fires the timers that fall due, in order; jumpWall() moves the wall clock alone, as an NTP
 * step does (either way) and as a suspend does (forward; timers, being monotonic, wait).
 */
export class ManualClock implements Clock {
  private wall: number;
  private monotonic = 0;
  private seq = 0;
  private readonly timers = new Set<PendingTimer>();
  private readonly steady: SteadyTime;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.wall = start;
    this.steady = new SteadyTime(() => this.wall, () => this.monotonic);
  }

  now(): number {
    return this.steady.now();
  }

  wallTime(): number {
    return this.wall;
  }

  onJump(listener: (ms: number) => void): () => void {
    return this.steady.onJump(listener);
  }

  setTimer(delayMs: number, callback: () => void): TimerHandle {
    const timer: PendingTimer = { due: this.monotonic + Math.max(0, delayMs), seq: this.seq++, callback };
    this.timers.add(timer);
    return { cancel: () => this.timers.delete(timer) };
  }

  /** Moves time forward, firing every timer that falls due on the way, in due order. */
  advance(ms: number): void {
    const target = this.monotonic + ms;
    for (;;) {
      const next = [...this.timers]
        .filter((t) => t.due <= target)
        .sort((a, b) => a.due - b.due || a.seq - b.seq)[0];
      if (next === undefined) break;
      this.timers.delete(next);
      const step = Math.max(0, next.due - this.monotonic);
      this.monotonic += step;
      this.wall += step;
      next.callback();
    }
    this.wall += target - this.monotonic;
    this.monotonic = target;
  }

  /** The wall clock alone moves by `ms` (negative: set back). No timer fires. */
  jumpWall(ms: number): void {
    this.wall += ms;
  }

  pendingTimers(): number {
    return this.timers.size;
  }
}

/** Resolves after `ms` of real time, or rejects when `signal` aborts. For backoff between retries. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
