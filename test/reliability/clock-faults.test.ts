/**
 * The fault suite, clock part: the wall clock set back and forward, and a suspend (the monotonic clock
 * stops while the wall clock moves on), against the whole daemon with its clock driven by the test.
 * Token ages, pauses and cooldowns must follow the time that really passed.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { recordFigure } from '../helpers/figures.js';
import { startInProcessDaemon, type InProcessDaemon } from '../helpers/in-process-daemon.js';
import { getOverSocket } from '../helpers/metadata-client.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';

const G = 'https://www.googleapis.com/auth/';
const SCOPES = Array.from({ length: 12 }, (_, i) => `${G}test.clock-${i}`);
const HOUR = 3600_000;

let standin: StandinHandle;
let tokend: InProcessDaemon;
let next = 0;
const newScope = () => SCOPES[next++]!;

before(async () => {
  standin = await startStandin({ extraScopes: SCOPES });
  tokend = await startInProcessDaemon({ name: 'clock-faults' });
  await tokend.login(standin, SCOPES.join(','));
});
beforeEach(async () => {
  standin.faults.length = 0;
  tokend.clock.advance(11 * 60_000);
  await tokend.daemon.broker.idle();
});
after(async () => {
  await tokend?.stop();
  await standin?.stop();
});

async function askFor(scope: string): Promise<{ status: number; expiresIn: number; accessToken: string }> {
  const answer = await getOverSocket(tokend.dirs.socket, `/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(scope)}`);
  const body = JSON.parse(answer.body) as { access_token: string; expires_in: number };
  return { status: answer.status, expiresIn: body.expires_in, accessToken: body.access_token };
}

function loggedJump(mark: number, seconds: number): boolean {
  return tokend.eventsSince(mark).some((line) => line.event === 'clock_jumped' && line.seconds === seconds);
}

describe('clock faults', () => {
  test('regression: the wall clock set back 2 h does not make a cached token look younger', async () => {
    const scope = newScope();
    const first = await askFor(scope);
    assert.equal(first.status, 200);
    const mark = tokend.mark();
    tokend.clock.jumpWall(-2 * HOUR);
    tokend.clock.advance(10 * 60_000);
    const later = await askFor(scope);
    assert.equal(later.accessToken, first.accessToken, 'the cached token is served');
    assert.ok(Math.abs(later.expiresIn - (first.expiresIn - 600)) <= 1, `expires_in ${later.expiresIn}, 10 min after ${first.expiresIn}`);
    assert.ok(loggedJump(mark, -7200), 'the jump is logged');
    recordFigure({ kind: 'fault', faultClass: 'clock', name: 'wall clock set back 2 h', survived: true, caller: '200, the cached token, expires_in still counting down', log: 'clock_jumped (-7200)' });
  });

  test('a suspend of 2 h (the monotonic clock stopped): the token that expired meanwhile is not served', async () => {
    const scope = newScope();
    const first = await askFor(scope);
    const mark = tokend.mark();
    tokend.clock.jumpWall(2 * HOUR);
    const after = await askFor(scope);
    assert.equal(after.status, 200);
    assert.notEqual(after.accessToken, first.accessToken, 'a new token, not the expired one');
    assert.ok(after.expiresIn > 3500, `expires_in ${after.expiresIn}`);
    assert.ok(tokend.eventsSince(mark).some((line) => line.event === 'token_issued' && line.cache === 'miss'), 'the audit line says miss');
    assert.ok(loggedJump(mark, 7200), 'the jump is logged');
    recordFigure({ kind: 'fault', faultClass: 'clock', name: 'suspend of 2 h', survived: true, caller: '200, a fresh token (miss)', log: 'clock_jumped (7200), token_issued miss' });
  });

  test('the wall clock set forward a day: each cached set is refreshed once, then served from the cache', async () => {
    const scopes = [newScope(), newScope(), newScope()];
    for (const scope of scopes) assert.equal((await askFor(scope)).status, 200);
    standin.resetStats();
    tokend.clock.jumpWall(24 * HOUR);
    for (let round = 0; round < 3; round++) {
      for (const scope of scopes) assert.equal((await askFor(scope)).status, 200);
    }
    await tokend.daemon.broker.idle();
    assert.equal(standin.stats.refreshGrants, 3);
    recordFigure({ kind: 'fault', faultClass: 'clock', name: 'wall clock set forward a day', survived: true, caller: '200; one refresh per cached set', log: 'clock_jumped' });
  });

  test('regression: the wall clock set back during a pause after a 429 does not stretch the pause', async () => {
    const scope = newScope();
    standin.faults.push({ status: 429, retryAfterSeconds: 60 });
    assert.equal((await askFor(scope)).status, 503);
    tokend.clock.jumpWall(-HOUR);
    tokend.clock.advance(61_000);
    const after = await askFor(scope);
    assert.equal(after.status, 200, 'the pause ended 60 s later, as the server said');
    recordFigure({ kind: 'fault', faultClass: 'clock', name: 'wall clock set back during a pause', survived: true, caller: '200 once the 60 s pause is over', log: 'clock_jumped' });
  });
});
