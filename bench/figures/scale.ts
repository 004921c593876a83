/**
 * Figure 7: 100 accounts × 20 scope sets, cached and kept fresh by background refresh against the
 * stand-in (15-minute tokens), on a driven clock: the memory each entry takes, and how the renewals
 * spread — the peak of upstream calls in any second against the bound the broker holds them to.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AccountRegistry } from '../../src/broker/accounts.js';
import { Broker, defaultFreshnessPolicy } from '../../src/broker/broker.js';
import { LoginManager } from '../../src/broker/login.js';
import { ScopeSet } from '../../src/broker/scopes.js';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { TokenEndpoint } from '../../src/oauth/token-endpoint.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { consentViaHttp } from '../../test/helpers/consent-driver.js';
import { startStandin } from '../../test/helpers/oauth-standin.js';
import type { Row } from '../lib/report.js';
import type { BenchContext } from '../run.js';

const ACCOUNTS = 100;
const SETS = 20;
const LIFETIME_SECONDS = 900;

function scopeSets(): ScopeSet[] {
  const apis = ['bigquery', 'cloud-platform', 'devstorage.read_only'];
  const sets: ScopeSet[] = [];
  for (let mask = 1; mask < 8; mask++) {
    for (const identity of ['', 'openid', 'email']) sets.push(ScopeSet.parse([...apis.filter((_, bit) => mask & (1 << bit)), identity].filter(Boolean).join(',')));
  }
  return sets.slice(0, SETS);
}

function collectGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

export async function scale(ctx: BenchContext): Promise<Row[]> {
  const standin = await startStandin({ artifactsDir: '', accessTokenTtlSeconds: LIFETIME_SECONDS });
  const clock = new ManualClock(Date.now());
  const logger = silentLogger();
  const upstream = new TokenEndpoint();
  const broker = new Broker({ accounts: new AccountRegistry(new MemoryStore(), logger), upstream, clock, logger });
  const logins = new LoginManager({ broker, upstream, clock, logger });
  const accounts = ctx.quick ? 20 : ACCOUNTS;
  try {
    const emails = Array.from({ length: accounts }, (_, i) => `user${i}@example.com`);
    for (const email of emails) {
      const started = await logins.start({ clientSecrets: standin.clientSecretsJson(), scopes: ScopeSet.parse('bigquery,cloud-platform,devstorage.read_only') });
      const page = await consentViaHttp(started.authUrl, { login: email });
      if (page.status !== 200) throw new Error(`consent for ${email}: ${page.status}`);
    }
    const gc = collectGarbage();
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const sets = scopeSets();
    for (const email of emails) await Promise.all(sets.map((scopes) => broker.getToken({ account: email, scopes })));
    gc();
    const perEntry = (process.memoryUsage().heapUsed - heapBefore) / (accounts * SETS);

    // Two lifetimes on the driven clock, a second at a time; every renewal is a real refresh upstream.
    standin.resetStats();
    const perSecond: number[] = [];
    for (let second = 0; second < 2 * LIFETIME_SECONDS; second++) {
      const before = standin.stats.refreshGrants;
      clock.advance(1_000);
      await broker.idle();
      perSecond.push(standin.stats.refreshGrants - before);
    }
    const renewals = perSecond.reduce((sum, count) => sum + count, 0);
    const busySeconds = perSecond.filter((count) => count > 0).length;
    const figure = `7 scale, ${accounts} accounts × ${SETS} scope sets`;
    return [
      { figure, case: 'heap per cached entry', unit: 'bytes', tokend: perEntry },
      { figure, case: `renewals in ${2 * LIFETIME_SECONDS} s of ${LIFETIME_SECONDS} s tokens`, unit: '', tokend: renewals, note: `over ${busySeconds} distinct seconds` },
      {
        figure,
        case: 'peak upstream calls in any second',
        unit: 'calls/s',
        tokend: Math.max(...perSecond),
        target: { kind: 'absolute', op: '<=', value: defaultFreshnessPolicy.maxBackgroundRefreshesPerSecond },
        note: `mean ${(renewals / perSecond.length).toFixed(2)}/s`,
      },
    ];
  } finally {
    await broker.stop();
    await standin.stop();
  }
}
