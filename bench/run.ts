/**
 * `npm run bench`: what a token costs a caller, each figure next to a baseline measured in the same
 * run on the same machine (machines here are noisy, so only the ratios mean much).
 *
 * - cache hit vs. the daemon's ping (`GET /`) on the same socket: the broker's share of a served token;
 * - cache miss (downscoped refresh through the daemon) vs. the same refresh POSTed straight to the
 *   stand-in's token endpoint: the daemon's overhead on the upstream path;
 * - 200 concurrent callers on one uncached scope set vs. one caller: what single-flight saves.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { systemClock } from '../src/clock.js';
import { parseClientSecrets } from '../src/oauth/client-config.js';
import { ConsentSession } from '../src/oauth/consent.js';
import { TokenEndpoint } from '../src/oauth/token-endpoint.js';
import { consentViaHttp } from '../test/helpers/consent-driver.js';
import { daemonDirs, startCli, startDaemonProcess } from '../test/helpers/daemon-process.js';
import { startStandin } from '../test/helpers/oauth-standin.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2000);
const G = 'https://www.googleapis.com/auth/';

function get(agent: Agent, socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, socketPath, path, headers: { 'metadata-flavor': 'Google', host: 'localhost' } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function summarize(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), mean: sorted.reduce((a, b) => a + b, 0) / sorted.length };
}

async function time(n: number, once: (i: number) => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await once(i);
    samples.push(performance.now() - started);
  }
  return samples;
}

const fmt = (ms: number) => `${ms.toFixed(3)} ms`;

/** A refresh token of the bench's own, from a consent run in-process, for the direct baseline. */
async function ownRefreshToken(clientSecrets: string): Promise<string> {
  const session = await ConsentSession.start<string>({
    client: parseClientSecrets(clientSecrets),
    scopes: [`${G}bigquery`, `${G}cloud-platform`, `${G}devstorage.read_only`],
    retryCommand: 'tokend login',
    timeoutMs: 30_000,
    clock: systemClock,
    tokenEndpoint: new TokenEndpoint(),
    finish: ({ grant }) => Promise.resolve({ value: grant.refreshToken.reveal(), page: { outcome: 'ok' as const, heading: 'ok', lines: [] } }),
  });
  await consentViaHttp(session.authUrl);
  return session.result;
}

async function main(): Promise<void> {
  const standin = await startStandin({ artifactsDir: '' });
  const dirs = daemonDirs();
  const env = { ...process.env, TOKEND_SOCKET: dirs.socket, TOKEND_CONFIG_DIR: dirs.configDir, TOKEND_STORE: 'memory', BROWSER: 'false' };
  const daemon = await startDaemonProcess({ name: 'bench', env, socket: dirs.socket });
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  try {
    const login = startCli(['login', '--client-secrets', standin.writeClientSecrets(dirs.root), '--scopes', 'bigquery,cloud-platform,devstorage.read_only'], env);
    const [, authUrl] = await login.waitForStderr(/^ {2}(http:\/\/127\.0\.0\.1:\d+\/auth\?\S+)$/m);
    await consentViaHttp(authUrl!);
    if ((await login.result).code !== 0) throw new Error('login failed');
    const tokenPath = (scopes: string) => `/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(scopes)}`;

    // Warm both paths, then interleave them so drift on the machine hits both alike.
    await get(agent, dirs.socket, tokenPath('bigquery'));
    for (let i = 0; i < 200; i++) await get(agent, dirs.socket, '/');
    const ping: number[] = [];
    const hit: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      ping.push(...(await time(1, async () => void (await get(agent, dirs.socket, '/')))));
      hit.push(...(await time(1, async () => void (await get(agent, dirs.socket, tokenPath('bigquery'))))));
    }

    // Misses: each round asks for a scope set the cache has never seen (a distinct extra scope string).
    const combos = [`${G}bigquery`, `${G}cloud-platform`, `${G}devstorage.read_only`];
    const subsets: string[] = [];
    for (let mask = 1; mask < 8; mask++) subsets.push(combos.filter((_, bit) => mask & (1 << bit)).join(','));
    const MISSES = subsets.length;
    const refreshToken = await ownRefreshToken(standin.clientSecretsJson());
    const miss = await time(MISSES, async (i) => {
      const res = await get(agent, dirs.socket, tokenPath(`${subsets[i]!},openid`));
      if (res.status !== 200) throw new Error(res.body);
    });
    // Baseline: the same narrowed refresh sent straight to the token endpoint, with the daemon's refresh token.
    const direct = await time(MISSES, async (i) => {
      const res = await fetch(standin.tokenUri, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: refreshToken,
          scope: `${subsets[i]!.replace(/,/g, ' ')} openid`,
          client_id: standin.clientId,
          client_secret: standin.clientSecret,
        }),
      });
      await res.text();
    });

    // Single-flight: 200 concurrent callers on a fresh scope set vs. one caller on another.
    standin.resetStats();
    const singleStart = performance.now();
    await get(agent, dirs.socket, tokenPath(`${G}bigquery email`));
    const single = performance.now() - singleStart;
    standin.resetStats();
    const crowdStart = performance.now();
    await Promise.all(Array.from({ length: 200 }, () => get(agent, dirs.socket, tokenPath(`${G}cloud-platform email`))));
    const crowd = performance.now() - crowdStart;

    const p = summarize(ping);
    const h = summarize(hit);
    const m = summarize(miss);
    const d = summarize(direct);
    console.log(`tokend bench (${ROUNDS} rounds; medians; lower is better)`);
    console.log(`  ping GET / (baseline)          p50 ${fmt(p.p50)}  p99 ${fmt(p.p99)}`);
    console.log(`  token, cache hit               p50 ${fmt(h.p50)}  p99 ${fmt(h.p99)}  = ${(h.p50 / p.p50).toFixed(2)}x ping`);
    console.log(`  refresh POST direct (baseline) p50 ${fmt(d.p50)}  (n=${d.n})`);
    console.log(`  token, cache miss via tokend   p50 ${fmt(m.p50)}  = ${(m.p50 / d.p50).toFixed(2)}x direct`);
    console.log(`  1 caller, uncached (baseline)  ${fmt(single)}`);
    console.log(`  200 concurrent callers, uncached ${fmt(crowd)} = ${(crowd / single).toFixed(2)}x one caller; upstream refreshes for the 200: ${standin.stats.refreshGrants}`);
  } finally {
    agent.destroy();
    await daemon.stop();
    await standin.stop();
  }
}

await main();
