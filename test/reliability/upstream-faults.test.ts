/**
 * The fault suite, upstream part: every way the OAuth server can fail or lie, injected into the real
 * stand-in's token endpoint, against the whole daemon on its real Unix socket with time driven by a
 * manual clock. For each fault: what the caller sees, what the log says, that the daemon keeps
 * answering, and that the account works again by itself once the server does (or, where the grant is
 * dead, after the login the error names).
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { recordFigure } from '../helpers/figures.js';
import { startInProcessDaemon, type InProcessDaemon } from '../helpers/in-process-daemon.js';
import { getOverSocket } from '../helpers/metadata-client.js';
import { startStandin, type StandinHandle, type TokenFault } from '../helpers/oauth-standin.js';

const G = 'https://www.googleapis.com/auth/';
const SCOPES = Array.from({ length: 60 }, (_, i) => `${G}test.fault-${i}`);
/** Longer than any pause the daemon takes after a failure (10 min) and its failure cooldown. */
const PAST_EVERY_PAUSE_MS = 11 * 60_000;

let standin: StandinHandle;
let tokend: InProcessDaemon;
let nextScope = 0;

before(async () => {
  standin = await startStandin({ extraScopes: SCOPES });
  // A short per-request limit, so that a server that never answers costs seconds, not the 30 s default.
  tokend = await startInProcessDaemon({ name: 'upstream-faults', config: { upstreamTimeoutMs: 800 } });
  await tokend.login(standin, SCOPES.join(','));
});
beforeEach(async () => {
  standin.faults.length = 0;
  tokend.clock.advance(PAST_EVERY_PAUSE_MS);
  await tokend.daemon.broker.idle();
});
after(async () => {
  await tokend?.stop();
  await standin?.stop();
});

interface Answer {
  status: number;
  body: { access_token?: string; expires_in?: number; error?: { code: string; message: string; hint?: string; details?: Record<string, unknown> } };
}

async function askFor(scope: string): Promise<Answer & { retryAfter: string | undefined }> {
  const answer = await getOverSocket(tokend.dirs.socket, `/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(scope)}`);
  const retryAfter = answer.headers['retry-after'];
  return { status: answer.status, body: JSON.parse(answer.body) as Answer['body'], retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined };
}

/** The daemon still answers, and a token for `scope` is minted for exactly that scope once the server behaves. */
async function assertRecovers(scope: string): Promise<void> {
  standin.faults.length = 0;
  tokend.clock.advance(PAST_EVERY_PAUSE_MS);
  await tokend.daemon.broker.idle();
  const ping = await getOverSocket(tokend.dirs.socket, '/');
  assert.equal(ping.status, 200, 'the daemon answers');
  const answer = await askFor(scope);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  const introspection = await standin.introspect(answer.body.access_token!);
  assert.equal(introspection.active, true);
  assert.ok(sameSet(introspection.scope, scope), `the token carries ${introspection.scope}`);
}

/** A scope set no earlier test asked for (one scope, then pairs), so that the first request is a cache miss. */
function newScope(): string {
  const n = nextScope++;
  const pair = Math.floor(n / SCOPES.length);
  return pair === 0 ? SCOPES[n]! : `${SCOPES[n % SCOPES.length]!} ${SCOPES[(n + pair) % SCOPES.length]!}`;
}

const sameSet = (a: string | null | undefined, b: string) => (a ?? '').split(' ').sort().join(' ') === b.split(' ').sort().join(' ');

/** Injects `faults` for requests of one fresh scope set only, so background renewals of others are untouched. */
function inject(scope: string, faults: TokenFault[]): void {
  standin.faults.length = 0;
  standin.faults.push(...faults);
  standin.faultWhen = (form) => sameSet(form.get('scope'), scope);
}

interface Case {
  name: string;
  faultClass: string;
  faults: TokenFault[];
  /** What the caller gets. */
  status: number;
  code?: string;
  message?: RegExp;
  /** A log line the daemon must write: its event, and the code of its error if given. */
  logs?: { event: string; code?: string };
}

const threeTimes = (fault: TokenFault): TokenFault[] => [fault, fault, fault];
const altered = (alter: (answer: Record<string, unknown>) => Record<string, unknown>): TokenFault[] => [{ alter }];

/** A fault the daemon cannot get past within the call: the caller gets 503 and the log a failed refresh. */
const unavailable = (name: string, faultClass: string, faults: TokenFault[], message?: RegExp): Case => ({
  name,
  faultClass,
  faults,
  status: 503,
  code: 'upstream_unavailable',
  ...(message === undefined ? {} : { message }),
  logs: { event: 'refresh_failed', code: 'upstream_unavailable' },
});

const cases: Case[] = [
  // What the token endpoint answers, with every try failing.
  ...[500, 502, 503, 504].map((status) => unavailable(`HTTP ${status} on every try`, 'upstream HTTP status', threeTimes({ status }), new RegExp(`answered HTTP ${status}`))),
  { name: 'HTTP 503 once, then an answer', faultClass: 'upstream HTTP status', faults: [{ status: 503 }], status: 200 },
  { name: 'HTTP 408 twice, then an answer', faultClass: 'upstream HTTP status', faults: [{ status: 408 }, { status: 408 }], status: 200 },
  { name: 'HTTP 429 with Retry-After: 1, then an answer', faultClass: 'upstream HTTP status', faults: [{ status: 429, retryAfterSeconds: 1 }], status: 200 },
  unavailable('HTTP 429 with Retry-After: 120 (not retried within the call)', 'upstream HTTP status', [{ status: 429, retryAfterSeconds: 120 }], /answered HTTP 429/),
  // The connection.
  unavailable('connection reset before the answer, every try', 'upstream connection', threeTimes({ reset: true }), /could not be reached/),
  { name: 'connection reset before the answer, once', faultClass: 'upstream connection', faults: [{ reset: true }], status: 200 },
  unavailable('connection reset in the middle of the body, every try', 'upstream connection', threeTimes({ resetMidBody: true })),
  unavailable('an answer slower than the time limit, every try', 'upstream connection', threeTimes({ delayMs: 1500 }), /did not answer within 800 ms/),
  unavailable('a server that never answers and never closes', 'upstream connection', threeTimes({ hang: 'headers' }), /did not answer within 800 ms/),
  unavailable('a server that sends headers, then never finishes the body nor closes', 'upstream connection', threeTimes({ hang: 'body' }), /did not answer within 800 ms/),
  // What a 200 says.
  ...(
    [
      ['malformed JSON', { raw: { status: 200, body: '{"access_token": "ya29.x", "expires_in": 3599' } }, /without a usable access_token/],
      ['an HTML page', { raw: { status: 200, body: '<html><body>Sign in</body></html>', contentType: 'text/html' } }, /without a usable access_token/],
      ['a JSON array', { raw: { status: 200, body: '[{"access_token":"ya29.x","expires_in":3599}]' } }, /without a usable access_token/],
      ['an empty body', { raw: { status: 200, body: '' } }, /without a usable access_token/],
    ] as const
  ).map(([what, fault, message]): Case => ({
    name: `a 200 with ${what}`,
    faultClass: 'upstream answer',
    faults: [fault],
    status: 502,
    code: 'upstream_rejected',
    message,
    logs: { event: 'request_failed', code: 'upstream_rejected' },
  })),
  ...(
    [
      ['without access_token', ({ access_token: _, ...rest }) => rest, /without a usable access_token/],
      ['with an empty access_token', (answer) => ({ ...answer, access_token: '' }), /without a usable access_token/],
      ['with a numeric access_token', (answer) => ({ ...answer, access_token: 12345 }), /without a usable access_token/],
      ['with a 10 KiB access_token', (answer) => ({ ...answer, access_token: 'x'.repeat(10_240) }), /without a usable access_token/],
      ['without expires_in', ({ expires_in: _, ...rest }) => rest, /without a usable expires_in/],
      ['with expires_in 0', (answer) => ({ ...answer, expires_in: 0 }), /without a usable expires_in/],
      ['with expires_in -3600', (answer) => ({ ...answer, expires_in: -3600 }), /without a usable expires_in/],
      ['with expires_in 0.4 (regression: was served as a token that expires at once)', (answer) => ({ ...answer, expires_in: 0.4 }), /without a usable expires_in/],
      ['with expires_in "soon"', (answer) => ({ ...answer, expires_in: 'soon' }), /without a usable expires_in/],
      ['with expires_in null', (answer) => ({ ...answer, expires_in: null }), /without a usable expires_in/],
      ['with a scope wider than asked', (answer) => ({ ...answer, scope: `${String(answer.scope)} ${G}cloud-platform` }), /with more than asked/],
      ['with a scope narrower than asked', (answer) => ({ ...answer, scope: `${G}bigquery` }), /without/],
    ] satisfies Array<[string, (answer: Record<string, unknown>) => Record<string, unknown>, RegExp]>
  ).map(([what, alter, message]): Case => ({
    name: `a 200 ${what}`,
    faultClass: 'upstream answer',
    faults: altered(alter),
    status: 502,
    code: 'upstream_rejected',
    message,
    logs: { event: 'request_failed', code: 'upstream_rejected' },
  })),
  // The OAuth server refuses.
  {
    name: 'invalid_scope',
    faultClass: 'upstream refusal',
    faults: [{ invalidScope: true }],
    status: 502,
    code: 'upstream_rejected',
    message: /invalid_scope/,
    logs: { event: 'request_failed', code: 'upstream_rejected' },
  },
  {
    name: 'invalid_client',
    faultClass: 'upstream refusal',
    faults: [{ raw: { status: 401, body: '{"error":"invalid_client","error_description":"The OAuth client was deleted."}' } }],
    status: 502,
    code: 'upstream_rejected',
    message: /rejected the client \(invalid_client\)/,
    logs: { event: 'request_failed', code: 'upstream_rejected' },
  },
  {
    name: 'a 400 whose error is not an OAuth code',
    faultClass: 'upstream refusal',
    faults: [{ raw: { status: 400, body: '{"error":"<script>alert(1)</script>"}' } }],
    status: 502,
    code: 'upstream_rejected',
    message: /unknown_error/,
    logs: { event: 'request_failed', code: 'upstream_rejected' },
  },
];

describe('upstream faults: each is survived, reported, and recovered from', () => {
  for (const each of cases) {
    test(each.name, async () => {
      const scope = newScope();
      const mark = tokend.mark();
      inject(scope, each.faults);
      const answer = await askFor(scope);
      assert.equal(answer.status, each.status, JSON.stringify(answer.body));
      if (each.code !== undefined) {
        assert.equal(answer.body.error?.code, each.code);
        assert.ok((answer.body.error?.hint ?? '').length > 0, 'the error has a hint');
      }
      if (each.message !== undefined) assert.match(answer.body.error?.message ?? '', each.message);
      if (each.status === 200) {
        const introspection = await standin.introspect(answer.body.access_token!);
        assert.ok(sameSet(introspection.scope, scope), `the token carries exactly the scope asked for, not ${introspection.scope}`);
      }
      if (each.logs !== undefined) {
        const { event, code } = each.logs;
        const lines = tokend.eventsSince(mark).filter((line) => line.event === event);
        assert.ok(
          lines.some((line) => code === undefined || (line.err as { code?: string } | undefined)?.code === code),
          `no ${event}${code === undefined ? '' : ` with ${code}`} in the log: ${JSON.stringify(tokend.eventsSince(mark))}`,
        );
      }
      assert.equal(standin.faults.length, 0, 'every fault was used');
      await assertRecovers(scope);
      recordFigure({
        kind: 'fault',
        faultClass: each.faultClass,
        name: each.name,
        survived: true,
        caller: each.status === 200 ? '200, a token (retried within the call)' : `${each.status} ${each.code ?? ''}`,
        log: each.logs === undefined ? '—' : `${each.logs.event}${each.logs.code === undefined ? '' : ` (${each.logs.code})`}`,
      });
    });
  }

  test('a 429 with a long Retry-After pauses the account: new sets are held back with the wait, cached ones still served', async () => {
    const cached = newScope();
    assert.equal((await askFor(cached)).status, 200);
    const scope = newScope();
    inject(scope, [{ status: 429, retryAfterSeconds: 120 }]);
    assert.equal((await askFor(scope)).status, 503);
    const held = await askFor(newScope());
    assert.equal(held.status, 503);
    assert.equal(held.body.error?.code, 'upstream_unavailable');
    assert.match(held.body.error?.message ?? '', /holding off the OAuth server for alice@example\.com for 120 s more: .*HTTP 429/);
    const wait = held.body.error?.details?.retryAfterSeconds as number;
    assert.ok(wait > 100 && wait <= 120, `retryAfterSeconds ${wait}`);
    assert.equal(held.retryAfter, String(wait), 'the wait is in Retry-After too');
    assert.equal((await askFor(cached)).status, 200, 'a cached token is still served during the pause');
    tokend.clock.advance(121_000);
    assert.equal((await askFor(scope)).status, 200, 'the pause ends when the server said');
    recordFigure({ kind: 'fault', faultClass: 'upstream HTTP status', name: 'HTTP 429: the account pauses for Retry-After', survived: true, caller: '503 upstream_unavailable with retryAfterSeconds and Retry-After; cached sets still 200', log: 'refresh_failed, upstream_held_back' });
  });

  test('regression: an expires_in of a thousand years is taken as 12 h (the daemon schedules its renewal as for 12 h); 3599.7 as 3599 s', async () => {
    const fractional = newScope();
    inject(fractional, altered((answer) => ({ ...answer, expires_in: 3599.7 })));
    const first = await askFor(fractional);
    assert.equal(first.status, 200);
    assert.equal(first.body.expires_in, 3599);

    const huge = newScope();
    inject(huge, altered((answer) => ({ ...answer, expires_in: 31_536_000_000 })));
    const second = await askFor(huge);
    assert.equal(second.status, 200);
    assert.ok(second.body.expires_in! <= 12 * 3600 && second.body.expires_in! > 12 * 3600 - 5, `expires_in ${second.body.expires_in}`);
    const status = JSON.parse((await getOverSocket(tokend.dirs.socket, '/tokend/v1/status')).body) as { accounts: Array<{ tokens: Array<{ scopes: string[]; expiresIn: number }> }> };
    const entry = status.accounts[0]!.tokens.find((token) => sameSet(token.scopes.join(' '), huge));
    assert.ok(entry !== undefined && entry.expiresIn <= 12 * 3600, 'the cache holds it for 12 h at most');
    recordFigure({ kind: 'fault', faultClass: 'upstream answer', name: 'expires_in fractional or huge', survived: true, caller: '200, expires_in 3599 / 43200 at most', log: 'token_issued' });
  });

  test('regression: a server that mints 5-second tokens is not refreshed in a loop in the background', async () => {
    const scope = newScope();
    standin.faults.length = 0;
    standin.faultWhen = (form) => sameSet(form.get('scope'), scope);
    for (let i = 0; i < 50; i++) standin.faults.push({ alter: (answer) => ({ ...answer, expires_in: 5 }) });
    const answer = await askFor(scope);
    assert.equal(answer.status, 200);
    assert.ok(answer.body.expires_in! <= 5, `expires_in ${answer.body.expires_in}`);
    standin.resetStats();
    for (let second = 0; second < 60; second++) {
      tokend.clock.advance(1000);
      await tokend.daemon.broker.idle();
    }
    assert.ok(standin.stats.refreshGrants <= 2, `${standin.stats.refreshGrants} background refreshes in a minute`);
    standin.faults.length = 0;
    recordFigure({ kind: 'fault', faultClass: 'upstream answer', name: 'expires_in of a few seconds', survived: true, caller: '200, the short-lived token; no background loop', log: 'token_issued' });
  });

  test('a refresh token rotated on every refresh: each new one is taken up (the stand-in revokes the grant if a spent one is used again)', async () => {
    standin.setRotateRefreshTokens(true);
    try {
      const mark = tokend.mark();
      for (let i = 0; i < 8; i++) {
        const scope = newScope();
        const answer = await askFor(scope);
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
      }
      const rotations = tokend.eventsSince(mark).filter((line) => line.event === 'refresh_token_rotated');
      assert.equal(rotations.length, 8);
    } finally {
      standin.setRotateRefreshTokens(false);
    }
    await assertRecovers(newScope());
    recordFigure({ kind: 'fault', faultClass: 'upstream refusal', name: 'refresh token rotated on every refresh', survived: true, caller: '200 every time', log: 'refresh_token_rotated' });
  });

  // Last: these end the grant. The account needs a new consent, and the error says how.
  for (const [variant, fault, reason] of [
    ['invalid_grant', { invalidGrant: true }, /expired or was revoked/],
    ['invalid_grant "Bad Request"', { invalidGrant: true, description: 'Bad Request' }, /expired or was revoked/],
    ['invalid_grant "Account has been deleted"', { invalidGrant: true, description: 'Account has been deleted' }, /expired or was revoked/],
    ['invalid_grant with error_subtype invalid_rapt', { invalidGrant: true, subtype: 'invalid_rapt' }, /session-control policy/],
    ['invalid_grant with error_subtype rapt_required', { invalidGrant: true, subtype: 'rapt_required' }, /session-control policy/],
  ] as const) {
    test(`${variant}: consent_required with the login command; the daemon keeps serving; a new login restores it`, async () => {
      const scope = newScope();
      const mark = tokend.mark();
      inject(scope, [fault]);
      const answer = await askFor(scope);
      assert.equal(answer.status, 403, JSON.stringify(answer.body));
      assert.equal(answer.body.error?.code, 'consent_required');
      assert.match(answer.body.error?.message ?? '', reason);
      assert.match(answer.body.error?.hint ?? '', /^run `tokend login --client-secrets .* --login-hint alice@example\.com`/);
      assert.ok(tokend.eventsSince(mark).some((line) => line.event === 'consent_required'), 'consent_required is logged');
      const again = await askFor(newScope());
      assert.equal(again.body.error?.code, 'consent_required', 'every set of the account needs the consent, without asking upstream again');
      await tokend.login(standin, SCOPES.join(','));
      await assertRecovers(scope);
      recordFigure({ kind: 'fault', faultClass: 'upstream refusal', name: variant, survived: true, caller: '403 consent_required with the login command', log: 'consent_required' });
    });
  }
});
