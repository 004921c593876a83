/**
 * Load, and floods, on loopback only and bounded in time, against the real daemon: many concurrent
 * clients on the Unix socket and the metadata listener for a minute (TOKEND_LOAD_SECONDS; the soak,
 * `npm run soak`, runs longer) with zero errors and memory and descriptors flat after warm-up; and a
 * runaway client flooding either listener while a well-behaved one is still served.
 * scripts/run-tests.js runs this group alone, so nothing else competes for the two cores.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { daemonDirs, daemonEnv, freePort, loginByPasteBack, startDaemonProcess, stopAllDaemons, type DaemonProcess } from '../helpers/daemon-process.js';
import { recordFigure } from '../helpers/figures.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';

const LOAD_SECONDS = Number(process.env.TOKEND_LOAD_SECONDS ?? 60);
const WARM_UP_SECONDS = Math.min(10, LOAD_SECONDS / 4);
const SCOPE_SETS = ['bigquery', 'cloud-platform', 'bigquery,cloud-platform', 'devstorage.read_only'];
const TOKEN = '/computeMetadata/v1/instance/service-accounts/default/token';

let standin: StandinHandle;
let daemon: DaemonProcess;
let socketPath: string;
let port: number;

before(async () => {
  standin = await startStandin();
  const dirs = daemonDirs();
  socketPath = dirs.socket;
  port = await freePort();
  const env = daemonEnv(dirs, { TOKEND_STORE: 'memory', TOKEND_METADATA_PORT: String(port), TOKEND_PROJECT_NUMBER: '123456789012', BROWSER: 'false' });
  // The audit trail at info, as users run it: one line per token issued.
  daemon = await startDaemonProcess({ name: 'load', env, socket: dirs.socket });
  const clientFile = standin.writeClientSecrets(dirs.root);
  assert.equal((await loginByPasteBack(['--client-secrets', clientFile, '--scopes', 'bigquery,cloud-platform,devstorage.read_only'], env)).code, 0);
});
after(async () => {
  await stopAllDaemons();
  await standin?.stop();
});

function footprint(pid: number): { rssMiB: number; fds: number } {
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { rssMiB: Number(rss?.[1] ?? 0) / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

type Via = { socketPath: string } | { host: string; port: number };

function getToken(via: Via, agent: Agent | undefined, scopes: string, close = false): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(
      {
        ...via,
        ...(agent === undefined ? { agent: false } : { agent }),
        path: `${TOKEN}?scopes=${encodeURIComponent(scopes)}`,
        headers: { 'metadata-flavor': 'Google', host: 'socketPath' in via ? 'localhost' : `127.0.0.1:${port}`, ...(close ? { connection: 'close' } : {}) },
      },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode === 200 && body.includes('"access_token"') ? 200 : (res.statusCode ?? 0), ms: performance.now() - started }));
      },
    );
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }));
    req.setTimeout(10_000, () => req.destroy());
    req.end();
  });
}

/** Keeps `clients` loops asking until `until`; returns the statuses that were not 200. */
async function load(clients: number, via: Via, until: () => boolean, options: { keepAlive: boolean }): Promise<{ requests: number; errors: number[] }> {
  const agent = options.keepAlive ? new Agent({ keepAlive: true, maxSockets: clients }) : undefined;
  let requests = 0;
  const errors: number[] = [];
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      while (!until()) {
        const { status } = await getToken(via, agent, SCOPE_SETS[(i + requests) % SCOPE_SETS.length]!, !options.keepAlive);
        requests++;
        if (status !== 200) errors.push(status);
      }
    }),
  );
  agent?.destroy();
  return { requests, errors };
}

describe('load and floods', () => {
  test(`${LOAD_SECONDS} s of 16 keep-alive clients on the Unix socket, 8 on the metadata listener and 4 reconnecting for every request: zero errors, memory and descriptors flat`, { timeout: (LOAD_SECONDS + 60) * 1000 }, async () => {
    const pid = daemon.child.pid!;
    const start = Date.now();
    const end = start + LOAD_SECONDS * 1000;
    const samples: Array<{ at: number; rssMiB: number; fds: number }> = [];
    let stop = false;
    const sampler = (async () => {
      while (!stop) {
        await sleep(1000);
        samples.push({ at: (Date.now() - start) / 1000, ...footprint(pid) });
      }
    })();
    const until = () => Date.now() >= end;
    const results = await Promise.all([
      load(16, { socketPath }, until, { keepAlive: true }),
      load(8, { host: '127.0.0.1', port }, until, { keepAlive: true }),
      load(4, { host: '127.0.0.1', port }, until, { keepAlive: false }),
    ]);
    stop = true;
    await sampler;
    const requests = results.reduce((n, r) => n + r.requests, 0);
    const errors = results.flatMap((r) => r.errors);
    const warm = samples.filter((s) => s.at >= WARM_UP_SECONDS && s.at <= LOAD_SECONDS - 1);
    assert.ok(warm.length >= 3, `only ${warm.length} samples after warm-up: the sampler starved`);
    const first = warm[0]!;
    const last = warm[warm.length - 1]!;
    const secondHalf = warm.filter((s) => s.at >= LOAD_SECONDS / 2);
    recordFigure({
      kind: 'load',
      name: `${LOAD_SECONDS} s, Unix socket and metadata listener`,
      requests,
      concurrency: 28,
      durationSeconds: LOAD_SECONDS,
      errors: errors.length,
      rssBeforeMiB: first.rssMiB,
      rssAfterMiB: last.rssMiB,
      fdsBefore: first.fds,
      fdsAfter: last.fds,
    });
    console.log(`samples: ${samples.map((s) => `${s.at.toFixed(0)}s ${s.rssMiB.toFixed(0)}MiB ${s.fds}fd`).join(', ')}`);
    assert.deepEqual(errors.slice(0, 10), [], `${errors.length} of ${requests} requests failed`);
    assert.ok(requests > LOAD_SECONDS * 20, `only ${requests} requests in ${LOAD_SECONDS} s`);
    // Flat: the floor RSS returns to after each collection does not rise through the second half (a
    // leak raises it); peaks between collections stay within 30 % of it (the collector's rhythm: with
    // clients reconnecting thousands of times a second, old space grows by ~25 MiB between major GCs).
    const floor = (samples: typeof secondHalf) => Math.min(...samples.map((s) => s.rssMiB));
    const earlyFloor = floor(secondHalf.slice(0, Math.ceil(secondHalf.length / 2)));
    const lateFloor = floor(secondHalf.slice(Math.floor(secondHalf.length / 2)));
    const rssHigh = Math.max(...secondHalf.map((s) => s.rssMiB));
    assert.ok(lateFloor <= earlyFloor * 1.1 + 8, `the RSS floor rose from ${earlyFloor.toFixed(1)} to ${lateFloor.toFixed(1)} MiB in the second half`);
    assert.ok(rssHigh <= earlyFloor * 1.3 + 8, `RSS peaked at ${rssHigh.toFixed(1)} MiB over a floor of ${earlyFloor.toFixed(1)} MiB in the second half`);
    assert.ok(last.rssMiB <= first.rssMiB * 1.25 + 8, `RSS grew from ${first.rssMiB.toFixed(1)} to ${last.rssMiB.toFixed(1)} MiB after warm-up`);
    const fdSpread = Math.max(...warm.map((s) => s.fds)) - Math.min(...warm.map((s) => s.fds));
    assert.ok(fdSpread <= 12, `open descriptors varied by ${fdSpread} after warm-up (${first.fds} → ${last.fds})`);
  });

  for (const [listener, viaOf, cap] of [
    ['the Unix socket', () => ({ socketPath }), 1024],
    ['the metadata listener', () => ({ host: '127.0.0.1', port }), 128],
  ] as const) {
    test(`regression: a runaway client holding 3× the cap of idle and dripping connections to ${listener} does not lock out a client that asks`, { timeout: 120_000 }, async () => {
      const via = viaOf();
      const pid = daemon.child.pid!;
      const mark = daemon.log().length;
      const before = footprint(pid);
      const flood: Socket[] = [];
      // A hundred of them drip a header that never ends (slow-loris); the rest send nothing at all.
      const drip = setInterval(() => {
        for (const socket of flood.slice(0, 100)) if (!socket.destroyed) socket.write('a');
      }, 200);
      try {
        for (let i = 0; i < cap * 3; i++) {
          const socket = 'socketPath' in via ? connect(via.socketPath) : connect(via.port, via.host);
          socket.on('error', () => undefined);
          if (i < 100) socket.write(`GET ${TOKEN} HTTP/1.1\r\nhost: localhost\r\nx-slow: `);
          flood.push(socket);
          // Steadily, as a runaway program opens them: each connection is accepted before the next batch.
          if (i % 50 === 49) await sleep(30);
        }
        await sleep(500);
        const latencies: number[] = [];
        const floodStarted = performance.now();
        for (let i = 0; i < 40; i++) {
          const { status, ms } = await getToken(via, undefined, 'bigquery', true);
          assert.equal(status, 200, `request ${i} during the flood`);
          latencies.push(ms);
        }
        const fds = footprint(pid).fds;
        assert.ok(fds <= cap + 200, `the daemon holds ${fds} descriptors during the flood (cap ${cap})`);
        latencies.sort((a, b) => a - b);
        assert.ok(latencies[latencies.length - 1]! < 5000, `the slowest request took ${latencies[latencies.length - 1]!.toFixed(0)} ms`);
        assert.match(daemon.log().slice(mark), /"event":"connection_evicted"/);
        recordFigure({
          kind: 'load',
          name: `flood of ${cap * 3} idle connections on ${listener}, 40 requests by another client`,
          requests: latencies.length,
          concurrency: cap * 3 + 1,
          durationSeconds: (performance.now() - floodStarted) / 1000,
          errors: latencies.length - 40,
          rssBeforeMiB: before.rssMiB,
          rssAfterMiB: footprint(pid).rssMiB,
          fdsBefore: before.fds,
          fdsAfter: fds,
        });
      } finally {
        clearInterval(drip);
        for (const socket of flood) socket.destroy();
      }
      await sleep(300);
      assert.equal((await getToken(via, undefined, 'bigquery', true)).status, 200, 'served after the flood');
    });
  }
});
