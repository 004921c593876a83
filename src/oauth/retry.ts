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
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
    this.name = 'RetryableError';
  }
}

/**
 * Runs `attempt` until it succeeds, throws something that is not a RetryableError, or the tries run
 * out (then the last RetryableError is thrown). Stops at once when `signal` aborts.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: (n: number) => Promise<T>,
  signal?: AbortSignal,
  random: () => number = Math.random,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (!(error instanceof RetryableError) || n >= policy.attempts || signal?.aborted) throw error;
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
      await delay(Math.floor(random() * ceiling), signal);
    }
  }
}
