import { delay } from '../clock.js';

export interface RetryPolicy {
  /** Total tries, the first included. */
  attempts: number;
  /** Backoff before retry n is a random duration in [0, baseDelayMs * 2^(n-1)] ("full jitter"). */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { attempts: 3, baseDelayMs: 250, maxDelayMs: 2000 };

/** Thrown by an attempt to say "this failure is worth another try". */
export class RetryableError extends Error {
  /** From the server's Retry-After header, when it sent one. */
  readonly retryAfterMs: number | undefined;
  /** What to do if it keeps failing, when more can be said than "check your network". */
  readonly hint: string | undefined;

  constructor(
    readonly reason: string,
    options?: { cause?: unknown; retryAfterMs?: number; hint?: string },
  ) {
    super(reason, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RetryableError';
    this.retryAfterMs = options?.retryAfterMs;
    this.hint = options?.hint;
  }
}

/** Retry-After as seconds or an HTTP date (RFC 9110 §10.2.3) → milliseconds from `now`. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Runs `attempt` until it succeeds, throws something that is not a RetryableError, or the tries run
 * out (then the last RetryableError is thrown). Stops at once when `signal` aborts.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: (n: number) => Promise<T>,
  signal?: AbortSignal,
  /** For tests: the jitter source and the wait itself. */
  { random = Math.random, sleep = delay }: { random?: () => number; sleep?: (ms: number, signal?: AbortSignal) => Promise<void> } = {},
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (!(error instanceof RetryableError) || n >= policy.attempts || signal?.aborted) throw error;
      // A server that says how long to wait is not asked again sooner; a long wait is the caller's.
      if (error.retryAfterMs !== undefined && error.retryAfterMs > policy.maxDelayMs) throw error;
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
      await sleep(Math.max(error.retryAfterMs ?? 0, Math.floor(random() * ceiling)), signal);
    }
  }
}
