// The keychain store against a real Secret Service (gnome-keyring on a private D-Bus), the same
// store with no Secret Service at all (in child processes), and store selection with its marker.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import {
  ConfigError,
  StoreCorruptError,
  StoreMismatchError,
  StoreTimeoutError,
  StoreUnavailableError,
} from '../../src/errors.js';
import { createLogger, silentLogger, type Logger } from '../../src/log.js';
import {
  classifyKeyringError,
  KeychainStore,
  keyringEntryOptions,
  napiKeyringBackend,
  type KeyringBackend,
  type KeyringEntry,
  type ProbeResult,
} from '../../src/store/keychain-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { selectStore, type KeychainCandidate } from '../../src/store/select-store.js';
import { readStoreMarker } from '../../src/store/store-marker.js';
import { noSecretServiceEnv, startKeyringSession, type KeyringSession } from '../helpers/keyring-session.js';
import { requirements, skipUnless } from '../helpers/requirements.js';

const execFileAsync = promisify(execFile);
const repoRoot = new URL('../..', import.meta.url).pathname;
const fixture = join(repoRoot, 'test/fixtures/store-no-secret-service.ts');
const linuxOnly = process.platform === 'linux' ? false : 'the Secret Service is Linux-only';
const keyringSkip = linuxOnly || skipUnless(requirements.keyring);

const scratch = mkdtempSync(join(tmpdir(), 'tokend-keychain-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
const freshConfigDir = () => join(scratch, `config-${(dirs += 1)}`);
const uniqueService = () => `tokend-test-${randomBytes(4).toString('hex')}`;

/** Lines of /proc/keys (the kernel keyrings this process can see) naming `service`. */
function kernelKeysFor(service: string): string[] {
  if (!existsSync('/proc/keys')) return [];
  return readFileSync('/proc/keys', 'utf8')
    .split('\n')
    .filter((line) => line.includes(`@${service}`));
}

function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: 'info',
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, lines };
}

/** What test/fixtures/store-no-secret-service.ts prints; which fields are set depends on the scenario. */
interface FixtureError {
  name: string;
  code?: string;
  message: string;
  hint?: string;
}
interface FixtureResult {
  wallMs: number;
  procKeys?: boolean;
  kernelKeys?: string[];
  deleted?: unknown;
  ok?: boolean;
  reason?: string;
  elapsedMs?: number;
  kind?: string;
  warning?: string;
  works?: boolean;
  logs?: Array<Record<string, unknown>>;
  error?: FixtureError;
  set?: FixtureError;
  get?: FixtureError;
  find?: FixtureError;
}

async function runFixture(args: string[], env: NodeJS.ProcessEnv): Promise<FixtureResult> {
  const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', fixture, ...args], {
    cwd: repoRoot,
    env,
    timeout: 30_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as FixtureResult;
}

describe('KeychainStore against a real Secret Service (gnome-keyring)', { skip: keyringSkip }, () => {
  let session: KeyringSession;
  let restoreEnv: () => void;
  let store: KeychainStore;

  before(async () => {
    session = await startKeyringSession();
    restoreEnv = session.applyToProcess();
    store = new KeychainStore({ timeoutMs: 5000 });
  });
  after(async () => {
    restoreEnv?.();
    await session?.stop();
  });

  test('round trip: set, get, find, delete', async () => {
    const service = uniqueService();
    assert.equal(store.kind, 'keychain');
    assert.equal(store.description, 'the Secret Service (org.freedesktop.secrets)');
    assert.equal(await store.getPassword(service, 'a@example.com'), null);
    assert.deepEqual(await store.findCredentials(service), []);

    await store.setPassword(service, 'a@example.com', 'refresh-a');
    await store.setPassword(service, 'b@example.com', 'refresh-b');
    await store.setPassword(service, 'a@example.com', 'refresh-a2');
    assert.equal(await store.getPassword(service, 'a@example.com'), 'refresh-a2');
    assert.deepEqual(
      (await store.findCredentials(service)).sort((x, y) => x.account.localeCompare(y.account)),
      [
        { account: 'a@example.com', password: 'refresh-a2' },
        { account: 'b@example.com', password: 'refresh-b' },
      ],
    );
    // Another instance (new entries, new connections) sees the same items.
    assert.equal(await new KeychainStore().getPassword(service, 'b@example.com'), 'refresh-b');

    assert.equal(await store.deletePassword(service, 'a@example.com'), true);
    assert.equal(await store.deletePassword(service, 'a@example.com'), false);
    assert.equal(await store.getPassword(service, 'a@example.com'), null);
    assert.deepEqual(await store.findCredentials(service), [{ account: 'b@example.com', password: 'refresh-b' }]);
  });

  test('the item is in the Secret Service (secret-tool sees it) and not in the kernel keyring', async () => {
    const service = uniqueService();
    await store.setPassword(service, 'alice@example.com', 'refresh-alice');
    assert.deepEqual(await session.search(service), [{ account: 'alice@example.com', secret: 'refresh-alice' }]);
    assert.deepEqual(kernelKeysFor(service), []);
    await store.deletePassword(service, 'alice@example.com');
    assert.deepEqual(await session.search(service), []);
  });

  test('probe: reachable and usable, and leaves no probe item behind', async (t) => {
    const first = await store.probe(5000);
    const second = await store.probe(5000);
    t.diagnostic(`probe with a Secret Service: first ${first.elapsedMs} ms, again ${second.elapsedMs} ms`);
    assert.equal(first.ok, true);
    assert.equal(second.ok, true);
    assert.deepEqual(await session.search('tokend-probe'), []);
  });

  test('a cached entry is reused: one entry built for many reads (counted, not timed)', async (t) => {
    const service = uniqueService();
    const real = napiKeyringBackend('linux');
    let built = 0;
    const counting = new KeychainStore({
      timeoutMs: 5000,
      backend: { ...real, createEntry: (s, a) => (built++, real.createEntry(s, a)) },
    });
    await counting.setPassword(service, 'a@example.com', 'x');
    const afterWrite = built;
    const started = performance.now();
    for (let i = 0; i < 50; i += 1) assert.equal(await counting.getPassword(service, 'a@example.com'), 'x', `read ${i}`);
    t.diagnostic(`get with a cached entry: ${((performance.now() - started) / 50).toFixed(2)} ms`);
    assert.equal(built - afterWrite, 0, 'no entry was built for the 50 reads');
    await counting.getPassword(service, 'b@example.com');
    assert.equal(built - afterWrite, 1, 'another account gets its own entry');
  });

  test('a Secret Service that stops answering: StoreTimeoutError within the limit, then fail-fast', async () => {
    const service = uniqueService();
    const quick = new KeychainStore({ timeoutMs: 300 });
    await quick.setPassword(service, 'a@example.com', 'before'); // builds and caches the entry
    const pid = await session.secretServicePid();
    process.kill(pid, 'SIGSTOP');
    try {
      let started = performance.now();
      await assert.rejects(quick.getPassword(service, 'a@example.com'), (err: unknown) => {
        assert.ok(err instanceof StoreTimeoutError, 'err instanceof StoreTimeoutError');
        assert.match(err.message, /Secret Service \(org\.freedesktop\.secrets\) did not answer within 300 ms/);
        return true;
      });
      let elapsed = performance.now() - started;
      assert.ok(elapsed >= 290 && elapsed < 1500, `timed out after ${elapsed} ms`);

      await assert.rejects(quick.setPassword(service, 'a@example.com', 'secret-during-hang'), (err: unknown) => {
        assert.ok(err instanceof StoreTimeoutError, 'err instanceof StoreTimeoutError');
        assert.ok(!err.message.includes('secret-during-hang') && !(err.hint ?? '').includes('secret-during-hang'), '!err.message.includes(\'secret-during-hang\') && !(err.hint ?? \'\').includes(\'secret-durin...');
        return true;
      });

      // Two calls are now stuck in the threadpool: the next one fails at once instead of queueing.
      started = performance.now();
      await assert.rejects(quick.getPassword(service, 'a@example.com'), /earlier calls/);
      elapsed = performance.now() - started;
      assert.ok(elapsed < 100, `fail-fast took ${elapsed} ms`);

      // A new store must build an entry, and the library's constructor is synchronous: against a
      // hung Secret Service it would block the event loop ~2 s. The liveness check (off the main
      // thread, time-bounded) answers first, and the loop keeps turning.
      let lastTick = performance.now();
      let maxGap = 0;
      const ticker = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - lastTick);
        lastTick = now;
      }, 10);
      const probe = await new KeychainStore({ timeoutMs: 300 }).probe(300).finally(() => clearInterval(ticker));
      assert.equal(probe.ok, false);
      assert.ok(probe.elapsedMs < 1000, `probe took ${probe.elapsedMs} ms`);
      assert.match(probe.reason, /did not answer within 300 ms/);
      assert.ok(maxGap < 250, `the event loop stalled for ${Math.round(maxGap)} ms`);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Once the service answers again, the stuck calls drain and the store recovers. A write that
    // timed out was already on the bus, so it may still land: its outcome is unknown, not "failed".
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        assert.ok(['before', 'secret-during-hang'].includes((await quick.getPassword(service, 'a@example.com'))!), '[\'before\', \'secret-during-hang\'].includes((await quick.getPassword(service, \'a@example....');
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    await quick.deletePassword(service, 'a@example.com');
  });

  test('selectStore: keychain and auto pick the keychain; it is recorded when the first account is saved in it', async () => {
    const configDir = freshConfigDir();
    const explicit = await selectStore({ setting: 'keychain', configDir, logger: silentLogger() });
    assert.equal(explicit.kind, 'keychain');
    assert.equal(explicit.store.description, new KeychainStore().description);
    assert.equal(explicit.warning, undefined);
    assert.equal(await readStoreMarker(configDir), undefined, 'nothing recorded before an account is saved');
    await explicit.store.setPassword('tokend-select-test', 'a@example.com', 'record');
    try {
      assert.equal((await readStoreMarker(configDir))?.kind, 'keychain');
      assert.equal(await explicit.store.getPassword('tokend-select-test', 'a@example.com'), 'record', 'the write reached the keychain');
    } finally {
      await explicit.store.deletePassword('tokend-select-test', 'a@example.com');
    }
    const auto = await selectStore({ setting: 'auto', configDir, logger: silentLogger() });
    assert.equal(auto.kind, 'keychain');
    assert.match(auto.reason, /^auto: the OS keychain is reachable/);
  });

  test('selectStore: auto stays with a file store that holds accounts, and names the command that moves them', async () => {
    const configDir = freshConfigDir();
    const file = await selectStore({ setting: 'file', configDir, passphrase: 'pw', logger: silentLogger() });
    await file.store.setPassword('tokend', 'a@example.com', 'record');
    const auto = await selectStore({ setting: 'auto', configDir, passphrase: 'pw', logger: silentLogger() });
    assert.equal(auto.kind, 'file');
    assert.match(auto.reason, /^auto: the file store \S+ \(encrypted\) held your account at start$/);
    assert.match(auto.warning ?? '', /The OS keychain is usable now, but your accounts are in the file store .*run `tokend store migrate --to keychain`/);
    assert.equal((await readStoreMarker(configDir))?.kind, 'file');
  });
});

describe('without a Secret Service (child processes)', { skip: linuxOnly }, () => {
  const env = noSecretServiceEnv();

  test('probe fails fast, within the time limit, naming why', async (t) => {
    const timeoutMs = 3000;
    const result = await runFixture(['probe', String(timeoutMs)], env);
    t.diagnostic(`probe without a Secret Service: ${result.elapsedMs} ms`);
    assert.equal(result.ok, false);
    assert.match(result.reason ?? '', /no Secret Service is reachable/);
    assert.ok(result.elapsedMs! < timeoutMs, `probe took ${result.elapsedMs} ms`);
  });

  test('KeychainStore refuses, and never falls back to the kernel keyring', async () => {
    const service = uniqueService();
    const result = await runFixture(['set', service], env);
    for (const op of ['set', 'get', 'find'] as const) {
      assert.equal(result[op]?.name, 'StoreUnavailableError', `${op}: ${JSON.stringify(result[op])}`);
      assert.equal(result[op].hint, 'start a Secret Service (gnome-keyring-daemon), or run `tokend serve --store file`');
    }
    assert.ok(!JSON.stringify(result).includes('fixture-secret-value'), '!JSON.stringify(result).includes(\'fixture-secret-value\')');
    // An entry built without the pin would have put the secret into the kernel keyring here.
    assert.deepEqual(kernelKeysFor(service), []);
  });

  test('the pin alone keeps the secret out of the kernel keyring (liveness check bypassed)', async () => {
    // The store's liveness check would refuse before any entry exists; here it is bypassed, so real
    // entries are constructed with no Secret Service and only the pin stands in the way.
    const service = uniqueService();
    const result = await runFixture(['unchecked', service], env);
    try {
      assert.equal(result.procKeys, true, '/proc/keys is readable, so a kernel key would be seen');
      assert.deepEqual(result.kernelKeys, [], 'kernel keys seen from the process that made the calls');
      assert.deepEqual(kernelKeysFor(service), [], 'kernel keys seen from the test process');
      for (const op of ['set', 'get'] as const) {
        assert.equal(result[op]?.name, 'StoreUnavailableError', `${op}: ${JSON.stringify(result[op])}`);
        assert.match(result[op].message, /connecting failed: no Secret Service is reachable/);
      }
      assert.ok(!JSON.stringify(result).includes('fixture-secret-value'), '!JSON.stringify(result).includes(\'fixture-secret-value\')');
    } finally {
      if (kernelKeysFor(service).length > 0) await runFixture(['kernel-cleanup', service], env);
    }
  });

  test('control: without the pin, the same calls put the secret in the kernel keyring, and the check sees it', async (t) => {
    const service = uniqueService();
    const result = await runFixture(['unchecked', service, 'unpinned'], env);
    try {
      if (result.kernelKeys?.length === 0 && process.env.CI !== 'true') {
        // A kernel without keyrings, or one that refuses add_key (container seccomp profiles do).
        t.skip('this environment does not let the library write kernel keys, so there is nothing to see');
        return;
      }
      assert.equal(result.kernelKeys?.length, 1, JSON.stringify(result.kernelKeys));
      assert.match(result.kernelKeys[0]!, new RegExp(`@${service}: \\d+$`));
      assert.equal(kernelKeysFor(service).length, 1);
      // And the store's error says nothing of it (the library reports AccessDenied): the fallback is silent.
      assert.notEqual(result.set, 'ok');
    } finally {
      const cleanup = await runFixture(['kernel-cleanup', service], env);
      assert.deepEqual(cleanup.kernelKeys, [], `kernel key left behind: ${JSON.stringify(cleanup)}`);
    }
  });

  test("selectStore({ setting: 'keychain' }) throws StoreUnavailableError fast, with the hint", async () => {
    const configDir = freshConfigDir();
    const result = await runFixture(['select', 'keychain', configDir, '3000'], env);
    assert.equal(result.error?.name, 'StoreUnavailableError');
    assert.match(result.error.message, /not usable: .*no Secret Service is reachable/);
    assert.match(result.error.hint ?? '', /start a Secret Service \(gnome-keyring-daemon\).*`--store file`/);
    assert.ok(result.wallMs < 3000, `took ${result.wallMs} ms`);
    assert.equal(await readStoreMarker(configDir), undefined, 'no marker for a failed selection');
  });

  test("'auto' falls back to a file, with a warning and a warn log line", async () => {
    const configDir = freshConfigDir();
    const result = await runFixture(['select', 'auto', configDir, '3000'], env);
    assert.equal(result.kind, 'file');
    assert.equal(result.works, true);
    assert.match(result.reason ?? '', /^auto: the OS keychain is not usable/);
    assert.match(result.warning ?? '', /keychain is not usable \(.*no Secret Service is reachable.*\)/);
    assert.match(result.warning ?? '', /NOT encrypted.*TOKEND_FILE_PASSPHRASE/);
    const warns = (result.logs ?? []).filter((l) => l.level === 40);
    assert.equal(warns.length, 1);
    assert.equal(warns[0]!.msg, result.warning);
    assert.ok(!JSON.stringify(result).includes('fixture-secret-value'), '!JSON.stringify(result).includes(\'fixture-secret-value\')');
    assert.equal((await readStoreMarker(configDir))?.kind, 'file');

    // With a passphrase the fallback file is encrypted, and the warning says so.
    const encryptedDir = freshConfigDir();
    const encrypted = await runFixture(['select', 'auto', encryptedDir, '3000'], {
      ...env,
      TOKEND_FILE_PASSPHRASE: 'fixture passphrase',
    });
    assert.equal(encrypted.kind, 'file');
    assert.match(encrypted.warning ?? '', /encrypted with TOKEND_FILE_PASSPHRASE/);
    assert.ok(!readFileSync(join(encryptedDir, 'secrets.json'), 'utf8').includes('fixture-secret-value'), '!readFileSync(join(encryptedDir, \'secrets.json\'), \'utf8\').includes(\'fixture-secret-value\')');
  });

  test('accounts in the keychain + auto + no keychain = StoreMismatchError, nothing re-created', async () => {
    const configDir = freshConfigDir();
    mkdirSync(configDir, { recursive: true, mode: 0o700 });
    const marker = '{"kind":"keychain","since":"2026-01-01T00:00:00.000Z"}\n';
    writeFileSync(join(configDir, 'store.json'), marker, { mode: 0o600 });
    const result = await runFixture(['select', 'auto', configDir, '3000'], env);
    assert.equal(result.error?.name, 'StoreMismatchError');
    assert.match(result.error.message, /^your accounts are in the OS keychain, which is unreachable now: .*no Secret Service/);
    assert.match(result.error.hint ?? '', /gnome-keyring-daemon/);
    assert.match(result.error.hint ?? '', /pass `--store file` explicitly to start a separate file store/);
    assert.equal(readFileSync(join(configDir, 'store.json'), 'utf8'), marker);
    assert.equal(existsSync(join(configDir, 'secrets.json')), false);
  });
});

/** A keychain stand-in for selection tests: reachable or not, on demand. */
function fakeKeychain(probe: ProbeResult): KeychainCandidate {
  return Object.assign(new MemoryStore(), {
    kind: 'keychain' as const,
    description: 'a fake keychain',
    probe: () => Promise.resolve(probe),
  });
}
const reachable = () => fakeKeychain({ ok: true, elapsedMs: 1 });
const unreachable = () => {
  const error = new StoreUnavailableError('the fake keychain is switched off', { hint: 'switch it on' });
  return fakeKeychain({ ok: false, reason: error.message, error, elapsedMs: 1 });
};

describe('selectStore and the store marker', () => {
  test('memory: the stated reason, no marker', async () => {
    const configDir = freshConfigDir();
    const selection = await selectStore({ setting: 'memory', configDir, logger: silentLogger() });
    assert.equal(selection.kind, 'memory');
    assert.equal(selection.reason, 'chosen (--store memory): secrets are lost when the daemon stops');
    assert.equal(selection.warning, undefined);
    assert.equal(existsSync(join(configDir, 'store.json')), false);
  });

  test('regression: a first start records nothing; an empty file store is no reason to stay in it', async () => {
    const configDir = freshConfigDir();
    const first = await selectStore({ setting: 'auto', configDir, passphrase: 'pw', logger: silentLogger(), createKeychain: unreachable });
    assert.equal(first.kind, 'file');
    assert.equal(await readStoreMarker(configDir), undefined, 'a start with no account records nothing');
    // A marker naming an empty file store (an account saved, then logged out) counts for nothing either.
    await first.store.setPassword('tokend', 'a@example.com', 'record');
    await first.store.deletePassword('tokend', 'a@example.com');
    assert.equal((await readStoreMarker(configDir))?.kind, 'file');
    const later = await selectStore({ setting: 'auto', configDir, passphrase: 'pw', logger: silentLogger(), createKeychain: reachable });
    assert.equal(later.kind, 'keychain', 'the keychain works now and the file store is empty');
    assert.match(later.reason, /^auto: the OS keychain is reachable/);
    assert.doesNotMatch(later.reason + (later.warning ?? ''), /recorded|store\.json/);
    await later.store.setPassword('tokend', 'b@example.com', 'record');
    assert.equal((await readStoreMarker(configDir))?.kind, 'keychain', 'the first account saved records the keychain');
  });

  test('the store setting is named by where it came from', async () => {
    const configDir = freshConfigDir();
    const memory = await selectStore({ setting: 'memory', origin: 'TOKEND_STORE=memory', configDir, logger: silentLogger() });
    assert.equal(memory.reason, 'chosen (TOKEND_STORE=memory): secrets are lost when the daemon stops');
    await assert.rejects(
      selectStore({ setting: 'keychain', origin: 'TOKEND_STORE=keychain', configDir, logger: silentLogger(), createKeychain: unreachable }),
      /^StoreUnavailableError: TOKEND_STORE=keychain asks for the OS keychain, but it is not usable: the fake keychain is switched off$/,
    );
  });

  test('file: reason says whether it is encrypted; unencrypted gets a warning', async () => {
    const plain = await selectStore({ setting: 'file', configDir: freshConfigDir(), logger: silentLogger() });
    assert.equal(plain.kind, 'file');
    assert.match(plain.reason, /\(not encrypted\)$/);
    assert.match(plain.warning ?? '', /set TOKEND_FILE_PASSPHRASE to encrypt it/);

    const configDir = freshConfigDir();
    const encrypted = await selectStore({ setting: 'file', configDir, passphrase: 'pw', logger: silentLogger() });
    assert.match(encrypted.reason, /\(encrypted\)$/);
    assert.equal(encrypted.warning, undefined);
    await encrypted.store.setPassword('tokend', 'a@example.com', 'record');
    const marker = await readStoreMarker(configDir);
    assert.equal(marker?.kind, 'file');
    assert.ok(!Number.isNaN(Date.parse(marker.since)), '!Number.isNaN(Date.parse(marker.since))');
  });

  test('file: a wrong passphrase fails selection, before anything is written', async () => {
    const configDir = freshConfigDir();
    const first = await selectStore({ setting: 'file', configDir, passphrase: 'one', logger: silentLogger() });
    await first.store.setPassword('tokend', 'a', 'x');
    await assert.rejects(
      selectStore({ setting: 'file', configDir, passphrase: 'two', logger: silentLogger() }),
      /wrong passphrase/,
    );
  });

  test('an explicit setting that differs from the marker: allowed, with a warning, and the marker moves once an account is saved', async () => {
    const configDir = freshConfigDir();
    const keychain = await selectStore({ setting: 'keychain', configDir, logger: silentLogger(), createKeychain: reachable });
    await keychain.store.setPassword('tokend', 'a@example.com', 'record');
    assert.equal((await readStoreMarker(configDir))?.kind, 'keychain');

    const file = await selectStore({ setting: 'file', configDir, passphrase: 'pw', logger: silentLogger() });
    assert.equal(file.kind, 'file');
    assert.match(file.warning ?? '', /accounts were in the OS keychain; they are not visible in the file store/);
    assert.equal((await readStoreMarker(configDir))?.kind, 'keychain', 'not moved by the start alone');
    await file.store.setPassword('tokend', 'b@example.com', 'record');
    assert.equal((await readStoreMarker(configDir))?.kind, 'file');

    const back = await selectStore({ setting: 'keychain', configDir, logger: silentLogger(), createKeychain: reachable });
    assert.match(back.warning ?? '', /accounts were in the file store .*secrets\.json/);
    await back.store.setPassword('tokend', 'c@example.com', 'record');
    assert.equal((await readStoreMarker(configDir))?.kind, 'keychain');

    const memory = await selectStore({ setting: 'memory', configDir, logger: silentLogger() });
    assert.match(memory.warning ?? '', /not visible in the memory store/);
    assert.equal((await readStoreMarker(configDir))?.kind, 'keychain', 'memory never moves the marker');
  });

  test('auto honours a file marker even when the keychain is reachable, while the file holds accounts', async () => {
    const configDir = freshConfigDir();
    const file = await selectStore({ setting: 'file', configDir, passphrase: 'pw', logger: silentLogger() });
    await file.store.setPassword('tokend', 'a@example.com', 'record');
    let probed = false;
    const selection = await selectStore({
      setting: 'auto',
      configDir,
      passphrase: 'pw',
      logger: silentLogger(),
      createKeychain: () => {
        probed = true;
        return reachable();
      },
    });
    assert.equal(selection.kind, 'file');
    assert.match(selection.reason, /^auto: the file store \S+ \(encrypted\) held your account at start$/);
    assert.equal(probed, true, 'the keychain is probed, to tell the user it is usable now');
    assert.match(selection.warning ?? '', /The OS keychain is usable now/);
  });

  test('auto: keychain marker + unreachable keychain = StoreMismatchError; no marker = announced fallback', async () => {
    const configDir = freshConfigDir();
    const first = await selectStore({ setting: 'auto', configDir, logger: silentLogger(), createKeychain: reachable });
    await first.store.setPassword('tokend', 'a@example.com', 'record');
    assert.equal((await readStoreMarker(configDir))?.kind, 'keychain');
    await assert.rejects(
      selectStore({ setting: 'auto', configDir, logger: silentLogger(), createKeychain: unreachable }),
      (err: unknown) => {
        assert.ok(err instanceof StoreMismatchError, 'err instanceof StoreMismatchError');
        assert.equal(err.message, 'your accounts are in the OS keychain, which is unreachable now: the fake keychain is switched off');
        return true;
      },
    );
    assert.equal(existsSync(join(configDir, 'secrets.json')), false);

    const fresh = freshConfigDir();
    const { logger, lines } = captureLogger();
    const fallback = await selectStore({ setting: 'auto', configDir: fresh, logger, createKeychain: unreachable });
    assert.equal(fallback.kind, 'file');
    assert.match(fallback.warning ?? '', /switched off/);
    assert.equal(lines.filter((l) => l.level === 40).length, 1);
  });

  test('a damaged marker and an unknown setting are refused', async () => {
    const configDir = freshConfigDir();
    mkdirSync(configDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(configDir, 'store.json'), '{"kind":"cloud"}');
    await assert.rejects(selectStore({ setting: 'auto', configDir, logger: silentLogger() }), StoreCorruptError);
    await assert.rejects(
      selectStore({ setting: 'vault' as 'auto', configDir: freshConfigDir(), logger: silentLogger() }),
      ConfigError,
    );
  });
});

describe('KeychainStore with a fake library', () => {
  function fakeBackend(overrides: Partial<KeyringBackend> & { entry?: Partial<KeyringEntry> }): {
    backend: KeyringBackend;
    created: string[];
  } {
    const created: string[] = [];
    const entry: KeyringEntry = {
      getPassword: () => Promise.resolve(null),
      setPassword: () => Promise.resolve(),
      deleteCredential: () => Promise.resolve(false),
      ...overrides.entry,
    };
    return {
      created,
      backend: {
        createEntry: (service, account) => {
          created.push(`${service}/${account}`);
          return entry;
        },
        findCredentials: () => Promise.resolve([]),
        ...(overrides.findCredentials ? { findCredentials: overrides.findCredentials } : {}),
      },
    };
  }

  test('entries are pinned to the Secret Service on Linux; other platforms get no options', () => {
    assert.deepEqual(keyringEntryOptions('linux'), { linux: { store: 'secret-service' } });
    assert.equal(keyringEntryOptions('darwin'), undefined);
    assert.equal(keyringEntryOptions('win32'), undefined);
  });

  test('on Linux, no entry is built when the liveness check fails (the synchronous constructor is not reached)', async () => {
    const { backend, created } = fakeBackend({
      findCredentials: () => Promise.reject(new Error('no secret service provider or dbus session found')),
    });
    const store = new KeychainStore({ backend, platform: 'linux' });
    await assert.rejects(store.setPassword('tokend', 'a', 'secret'), StoreUnavailableError);
    assert.deepEqual(created, []);

    let checked = false;
    const other = fakeBackend({
      findCredentials: () => {
        checked = true;
        return Promise.resolve([]);
      },
    });
    await new KeychainStore({ backend: other.backend, platform: 'darwin' }).getPassword('tokend', 'a');
    assert.equal(checked, false, 'no check where there is one store');
  });

  test('a constructor that throws (a pinned entry with no Secret Service) is unavailable, and is retried next time', async () => {
    let attempts = 0;
    const { backend } = fakeBackend({});
    const failing: KeyringBackend = {
      ...backend,
      createEntry: () => {
        attempts += 1;
        throw new Error('Platform failure: DBus error: Failed to connect to socket /run/user/1000/bus: No such file or directory');
      },
    };
    const store = new KeychainStore({ backend: failing, platform: 'linux' });
    for (let i = 0; i < 2; i += 1) {
      await assert.rejects(store.getPassword('s', 'a'), (err: unknown) => {
        assert.ok(err instanceof StoreUnavailableError, 'err instanceof StoreUnavailableError');
        assert.match(err.message, /connecting failed: no Secret Service is reachable on the D-Bus session bus$/);
        assert.deepEqual(err.details, { keychainFailure: 'unreachable', libraryError: 'Error' }, 'the library\'s error class is kept for the log');
        assert.ok(!err.message.includes('/run/user'), '!err.message.includes(\'/run/user\')');
        return true;
      });
    }
    assert.equal(attempts, 2, 'a failed entry is not cached');
  });

  test('a timed-out call is aborted; a cancelled queued call still reports a timeout and is not counted stuck', async () => {
    const signals: AbortSignal[] = [];
    const { backend } = fakeBackend({
      entry: {
        // Like the library for a call still queued for a thread: rejects as soon as it is aborted.
        setPassword: (_password, signal) =>
          new Promise((_, reject) => {
            signals.push(signal!);
            signal!.addEventListener('abort', () => reject(Object.assign(new Error('AbortError'), { name: 'AbortError', code: 'Cancelled' })));
          }),
      },
    });
    const store = new KeychainStore({ backend, platform: 'linux', timeoutMs: 30 });
    // More calls than MAX_STUCK_CALLS: cancelled calls settle, so none of these fails fast.
    for (let i = 0; i < 4; i += 1) {
      await assert.rejects(store.setPassword('s', 'a', 'x'), (err: unknown) => {
        assert.ok(err instanceof StoreTimeoutError, String(err));
        assert.match(err.message, /did not answer within 30 ms \(storing a secret; the change may still be applied/);
        return true;
      });
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(signals.length, 4);
    assert.ok(signals.every((signal) => signal.aborted), 'signals.every((signal) => signal.aborted)');
  });

  test('entries are cached per (service, account)', async () => {
    const { backend, created } = fakeBackend({});
    const store = new KeychainStore({ backend, platform: 'linux' });
    await Promise.all([store.getPassword('s', 'a'), store.getPassword('s', 'a'), store.getPassword('s', 'b')]);
    await store.setPassword('s', 'a', 'x');
    assert.deepEqual(created.sort(), ['s/a', 's/b']);
  });

  test('library errors become fixed messages: the library text (which may hold item data) is dropped', async () => {
    const leaky = new Error('Couldn\'t decode: BadEncoding([115, 101, 99]) "sec-ret-value"');
    const { backend } = fakeBackend({ entry: { getPassword: () => Promise.reject(leaky) } });
    const store = new KeychainStore({ backend, platform: 'linux' });
    await assert.rejects(store.getPassword('s', 'a'), (err: unknown) => {
      assert.ok(err instanceof StoreUnavailableError, 'err instanceof StoreUnavailableError');
      assert.ok(!err.message.includes('sec-ret-value') && !err.message.includes('115'), '!err.message.includes(\'sec-ret-value\') && !err.message.includes(\'115\')');
      assert.match(err.message, /holds data that is not valid text$/);
      assert.equal(err.details?.keychainFailure, 'bad-data');
      return true;
    });
  });

  test('a call that never returns times out', async () => {
    const { backend } = fakeBackend({ entry: { getPassword: () => new Promise(() => undefined) } });
    const store = new KeychainStore({ backend, platform: 'darwin', timeoutMs: 50 });
    await assert.rejects(store.getPassword('s', 'a'), /the macOS Keychain did not answer within 50 ms/);
  });

  test('error kinds', () => {
    const kind = (message: string) => classifyKeyringError(new Error(message));
    assert.equal(kind('no secret service provider or dbus session found'), 'unreachable');
    assert.equal(kind('Couldn\'t access platform storage: Secret Service: unlock prompt was dismissed'), 'prompt-dismissed');
    assert.equal(kind('zbus error: org.freedesktop.Secret.Error.IsLocked: Cannot get secret of a locked object'), 'locked');
    assert.equal(kind("Couldn't access platform storage: AccessDenied"), 'access-denied');
    assert.equal(kind("Couldn't access platform storage: Secret Service: no result found"), 'no-keyring');
    // @napi-rs/keyring 2.x: a pinned constructor (libdbus) and findCredentialsAsync (zbus).
    assert.equal(kind('Platform failure: DBus error: Failed to connect to socket /nonexistent/bus: No such file or directory'), 'unreachable');
    assert.equal(kind('Platform failure: DBus error: Failed to connect to socket /tmp/bus: Connection refused'), 'unreachable');
    assert.equal(
      kind('Platform failure: DBus error: Using X11 for dbus-daemon autolaunch was disabled at compile time, set your DBUS_SESSION_BUS_ADDRESS instead'),
      'unreachable',
    );
    assert.equal(kind('Platform failure: DBus error: Address does not contain a colon'), 'unreachable');
    assert.equal(kind('zbus error: Failed to connect to address `unix:path=/nonexistent/bus`: No such file or directory (os error 2)'), 'unreachable');
    assert.equal(
      kind('Platform failure: DBus error: Did not receive a reply. Possible causes include: the remote application did not send a reply, the message bus security policy blocked the reply, the reply timeout expired, or the network connection was broken.'),
      'no-reply',
    );
    assert.equal(kind('something else'), 'failure');
    assert.equal(classifyKeyringError('not an error'), 'failure');
  });
});
