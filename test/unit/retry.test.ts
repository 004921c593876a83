import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { defaultRetryPolicy, parseRetryAfter, RetryableError, withRetries } from '../../src/oauth/retry.js';

/** Runs withRetries against an attempt that always fails retryably; returns the attempts and the waits. */
async function failingRun(random: () => number, error = () => new RetryableError('HTTP 503')) {
  let attempts = 0;
  const waits: number[] = [];
  await assert.rejects(
    withRetries(defaultRetryPolicy, () => {
      attempts++;
      return Promise.reject(error());
    }, undefined, { random, sleep: (ms) => (waits.push(ms), Promise.resolve()) }),
    RetryableError,
  );
  return { attempts, waits };
}

describe('retries', () => {
  test('exactly 3 attempts, with full-jitter waits inside a doubling window (250 ms, then 500 ms)', async () => {
    const top = await failingRun(() => 0.999_999);
    assert.equal(top.attempts, 3, 'three attempts in all, no more');
    assert.deepEqual(top.waits, [249, 499], 'the largest waits stay below each window');
    const middle = await failingRun(() => 0.5);
    assert.deepEqual(middle.waits, [125, 250], 'waits are drawn within the window, and the window doubles');
    const none = await failingRun(() => 0);
    assert.deepEqual(none.waits, [0, 0]);
  });

  test('a failure that is not retryable is thrown at once', async () => {
    let attempts = 0;
    await assert.rejects(
      withRetries(defaultRetryPolicy, () => {
        attempts++;
        return Promise.reject(new Error('invalid_client'));
      }, undefined, { sleep: () => Promise.resolve() }),
      /invalid_client/,
    );
    assert.equal(attempts, 1);
  });

  test('Retry-After: a short one is waited for; a long one is not retried within the call', async () => {
    const short = await failingRun(() => 0, () => new RetryableError('HTTP 429', { retryAfterMs: 1_000 }));
    assert.deepEqual(short.waits, [1_000, 1_000]);
    const long = await failingRun(() => 0, () => new RetryableError('HTTP 429', { retryAfterMs: 30_000 }));
    assert.equal(long.attempts, 1);
    assert.deepEqual(long.waits, []);
  });

  test('Retry-After is read as seconds or as an HTTP date', () => {
    const now = Date.UTC(2026, 0, 1);
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(new Date(now + 30_000).toUTCString(), now), 30_000);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });
});
