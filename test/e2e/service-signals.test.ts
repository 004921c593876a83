/**
 * The daemon as a service manager drives it: SIGTERM under load lets every request in flight finish
 * and exits 0, within a bound even when a request is stuck upstream; SIGHUP reloads the
 * configuration, keeping the old one when the new one is broken; logs in JSON or for people.
 */
import assert from 'node:assert/strict';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { daemonDirs, daemonEnv, loginByPasteBack, runCli, startDaemonProcess, stopAllDaemons, type DaemonProcess } from '../helpers/daemon-process.js';
import { getOverSocket } from '../helpers/metadata-client.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';

let standin: StandinHandle;
before(async () => (standin = await startStandin()));
after(async () => {
  await stopAllDaemons();
  await standin?.stop();
});

async function loggedInDaemon(name: string, config: Record<string, unknown> = {}, args: string[] = []) {
  const dirs = daemonDirs();
  mkdirSync(dirs.configDir, { mode: 0o700 });
  const configFile = join(dirs.configDir, 'config.json');
  writeFileSync(configFile, JSON.stringify(config), { mode: 0o600 });
  const env = daemonEnv(dirs, { TOKEND_STORE: 'memory', BROWSER: 'false' });
  const daemon = await startDaemonProcess({ name, env, socket: dirs.socket, args });
  const login = await loginByPasteBack(['--client-secrets', standin.writeClientSecrets(dirs.root), '--scopes', 'bigquery,cloud-platform,devstorage.read_only', '--default'], env);
  assert.equal(login.code, 0, login.stderr);
  return { dirs, env, daemon, configFile };
}

/** Waits for the daemon to log `pattern` (an event, not a time), at most 10 s. */
async function logged(daemon: DaemonProcess, pattern: RegExp, from = 0): Promise<string> {
  for (let i = 0; i < 500; i++) {
    const match = pattern.exec(daemon.log().slice(from));
    if (match !== null) return match[0];
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`the daemon did not log ${pattern}:\n${daemon.log().slice(from)}`);
}

const tokenPath = (scopes: string) => `/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(scopes)}`;
const NUMBER_PATH = '/computeMetadata/v1/project/numeric-project-id';

describe('SIGTERM', () => {
  test('under load: every request in flight completes, the exit status is 0 and the socket is removed', async () => {
    const { dirs, daemon } = await loggedInDaemon('sigterm-load');
    // Warm one set so that part of the load is cache hits, part waits on slow refreshes.
    assert.equal((await getOverSocket(dirs.socket, tokenPath('bigquery'))).status, 200);
    standin.resetStats();
    for (let i = 0; i < 3; i++) standin.faults.push({ delayMs: 1500 });
    const sets = ['cloud-platform', 'devstorage.read_only', 'bigquery,devstorage.read_only', 'bigquery'];
    const inFlight = Array.from({ length: 80 }, (_, i) => getOverSocket(dirs.socket, tokenPath(sets[i % sets.length]!)));
    while (standin.stats.refreshGrants < 3) await new Promise((resolve) => setImmediate(resolve));
    daemon.child.kill('SIGTERM');
    const answers = await Promise.all(inFlight);
    assert.deepEqual([...new Set(answers.map((answer) => answer.status))], [200], 'every request in flight got its token');
    assert.ok(answers.every((answer) => typeof JSON.parse(answer.body).access_token === 'string'), 'each with an access token');
    assert.equal(await daemon.exited, 0);
    assert.throws(() => statSync(dirs.socket), /ENOENT/);
    assert.match(daemon.log(), /"event":"stopped"/);
  });

  test('a request stuck upstream does not hold the exit: after 10 s the daemon leaves with status 1 and says why', async () => {
    const { dirs, daemon } = await loggedInDaemon('sigterm-stuck', { upstreamTimeoutMs: 20_000 });
    standin.resetStats();
    standin.faults.push({ delayMs: 19_000 });
    const stuck = getOverSocket(dirs.socket, tokenPath('cloud-platform')).catch((error: Error) => error);
    while (standin.stats.refreshGrants === 0) await new Promise((resolve) => setImmediate(resolve));
    const sent = Date.now();
    daemon.child.kill('SIGTERM');
    assert.equal(await daemon.exited, 1);
    const took = Date.now() - sent;
    assert.ok(took >= 9_500 && took < 15_000, `exited ${took} ms after SIGTERM`);
    assert.match(daemon.log(), /"event":"shutdown_timeout"/);
    assert.ok((await stuck) instanceof Error, 'the stuck caller sees its connection end');
  });
});

describe('SIGHUP', () => {
  test('a broken configuration is refused and logged, the old one kept; a good one is applied, and what needs a restart is named', async () => {
    const { dirs, daemon, configFile, env } = await loggedInDaemon('sighup', { projectNumber: '111111' });
    assert.equal((await getOverSocket(dirs.socket, NUMBER_PATH)).body, '111111');

    writeFileSync(configFile, '{"projectNumber": "222222",');
    let from = daemon.log().length;
    daemon.child.kill('SIGHUP');
    const refused = await logged(daemon, /\{[^\n]*"event":"config_reload_failed"[^\n]*\}/, from);
    assert.match(refused, new RegExp(`configuration not reloaded, the one in use is kept: ${configFile.replace(/[.]/g, '\\.')} is not valid JSON`));
    assert.equal((await getOverSocket(dirs.socket, NUMBER_PATH)).body, '111111', 'the old configuration is still in use');

    writeFileSync(configFile, JSON.stringify({ projectNumber: '222222', logLevel: 'warn', loginTimeoutSeconds: 120 }));
    from = daemon.log().length;
    daemon.child.kill('SIGHUP');
    const reloaded = JSON.parse(await logged(daemon, /\{[^\n]*"event":"config_reloaded"[^\n]*\}/, from)) as { applied: string[]; need_restart: string[]; msg: string };
    assert.deepEqual(reloaded.applied.sort(), ['logLevel', 'projectNumber']);
    assert.deepEqual(reloaded.need_restart, ['loginTimeoutSeconds']);
    assert.match(reloaded.msg, /loginTimeoutSeconds changed and takes effect at the next start of `tokend serve`$/);
    assert.equal((await getOverSocket(dirs.socket, NUMBER_PATH)).body, '222222');
    from = daemon.log().length;
    assert.equal((await runCli(['token', '--scopes', 'bigquery'], env)).code, 0, 'the daemon still serves');
    // The audit line is written before the answer: at level warn, none was.
    assert.doesNotMatch(daemon.log().slice(from), /token_issued/);
    assert.equal(await daemon.stop(), 0);
  });
});

describe('log format', () => {
  test('--log-format pretty writes lines for people, with the same redaction; JSON is the default', async () => {
    const { daemon, env } = await loggedInDaemon('pretty-log', {}, ['--log-format', 'pretty']);
    assert.equal((await runCli(['token', '--scopes', 'bigquery'], env)).code, 0);
    await daemon.stop();
    const lines = daemon.log().trim().split('\n');
    assert.ok(lines.every((row) => !row.startsWith('{')), 'no JSON line');
    assert.ok(
      lines.some((row) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}tokend \S+ listening on \S+ {2}event=listening socket=\S+/.test(row)),
      lines.join('\n'),
    );
    assert.ok(lines.some((row) => /INFO {2}access token issued {2}event=token_issued account=\S+ scopes=\["https/.test(row)), 'the audit line, readable');
  });
});
