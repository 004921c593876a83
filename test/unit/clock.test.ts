import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SteadyTime, systemClock } from '../../src/clock.js';

test('regression: a system-clock timer longer than 24.8 days does not fire at once', async () => {
  // setTimeout turns a delay above 2^31-1 ms into 1 ms; a timer that far out must wait instead.
  let fired = false;
  const timer = systemClock.setTimer(2 ** 31 + 1000, () => (fired = true));
  await sleep(30);
  timer.cancel();
  assert.equal(fired, false);
  let soon = false;
  systemClock.setTimer(1, () => (soon = true));
  await sleep(30);
  assert.equal(soon, true, 'a short timer still fires');
});

test('steady time: noise between the clocks does not add up; a jump back is ignored, a later suspend still counts', () => {
  let wall = 1_000_000;
  let mono = 0;
  const jumps: number[] = [];
  const steady = new SteadyTime(() => wall, () => mono);
  steady.onJump((ms) => jumps.push(ms));
  for (let i = 0; i < 10_000; i++) {
    mono += 1;
    wall += i % 2 === 0 ? 2 : 0; // the wall clock ticks in coarser steps
    steady.now();
  }
  assert.equal(steady.now(), 1_000_000 + mono);
  wall -= 3600_000; // set back an hour
  mono += 10;
  assert.equal(steady.now(), 1_000_000 + mono, 'keeps counting on the monotonic clock');
  wall += 7200_000; // two hours asleep: only the wall clock moves
  assert.equal(steady.now(), 1_000_000 + mono + 7200_000);
  assert.deepEqual(jumps, [-3600_010, 7200_000]);
});

test('a system-clock timer longer than 24.8 days is re-armed, and fires when it is due', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let fired = false;
    systemClock.setTimer(2 ** 31 + 1000, () => (fired = true));
    mock.timers.tick(2 ** 31 - 1);
    assert.equal(fired, false, 'not at the first 2^31 - 1 ms');
    mock.timers.tick(1001);
    assert.equal(fired, true);
  } finally {
    mock.timers.reset();
  }
});
