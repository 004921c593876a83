/**
 * The bad-input suite, outside HTTP: the CLI's arguments (a corpus and seeded random argv), the
 * configuration file and the client file, each bad in every way we could think of, given to the real
 * CLI and daemon. Each must end quickly with tokend's error (what failed, and the hint), an exit code
 * from the catalogue, and no stack trace; nothing may hang on a FIFO or read /dev/zero without end.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { after, before, describe, test } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { fuzzSeed, report, tally, type Tally } from '../helpers/bad-input.js';
import { daemonDirs, daemonEnv, runCli, startDaemonProcess, stopAllDaemons, type CliResult } from '../helpers/daemon-process.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { OTHER_GID, OTHER_UID } from '../helpers/second-user.js';

// Narrower than the HTTP suites' list: a CLI message may name a path under the working directory.
const INTERNALS = /node_modules|\/src\/|\.[jt]s:\d+|\bat [\w.<>]+ \(|TypeError|RangeError|ReferenceError|ERR_[A-Z_]{4,}/;
const EXIT_CODES = new Set<number>(Object.values(ExitCode));
const RUN_LIMIT_MS = 10_000;
const FUZZ_RUNS = 40;

let standin: StandinHandle;
let env: NodeJS.ProcessEnv;
let scratch: string;
const seed = fuzzSeed();

before(async () => {
  standin = await startStandin();
  const dirs = daemonDirs();
  scratch = mkdtempSync(join(tmpdir(), 'tokend-bad-files-'));
  // Nothing a random command does may land in the real home.
  env = daemonEnv(dirs, { TOKEND_STORE: 'memory', BROWSER: 'false', HOME: join(scratch, 'home'), XDG_CONFIG_HOME: join(scratch, 'xdg'), XDG_RUNTIME_DIR: '' });
  mkdirSync(join(scratch, 'home'), { mode: 0o700 });
  await startDaemonProcess({ name: 'bad-input-files', env, socket: dirs.socket });
});
after(async () => {
  await stopAllDaemons();
  await standin?.stop();
});

/** Judges one CLI run: finished, an exit code tokend documents, its error with a hint, no internals. */
function judgeCli(t: Tally, label: string, result: CliResult | 'timeout', expect?: { code?: number; stderr?: RegExp }): void {
  t.cases++;
  const problems: string[] = [];
  if (result === 'timeout') {
    problems.push(`did not finish within ${RUN_LIMIT_MS} ms`);
  } else {
    if (result.code === null || !EXIT_CODES.has(result.code)) {
      t.crashes++;
      problems.push(`exit ${result.code}`);
    }
    if (INTERNALS.test(result.stderr) || INTERNALS.test(result.stdout)) {
      t.leaks++;
      problems.push(`internals shown: ${result.stderr.slice(0, 300)}`);
    }
    if (result.code !== 0 && !/^tokend: .+\n(.*\n)*hint: .+/m.test(result.stderr)) problems.push(`not tokend's error format: ${result.stderr.slice(0, 300)}`);
    if (expect?.code !== undefined && result.code !== expect.code) problems.push(`exit ${result.code}, expected ${expect.code}: ${result.stderr.slice(0, 300)}`);
    if (expect?.stderr !== undefined && !expect.stderr.test(result.stderr)) problems.push(`stderr does not match ${expect.stderr}: ${result.stderr.slice(0, 300)}`);
  }
  for (const problem of problems) t.problems.push(`${label}: ${problem}`);
}

async function cli(args: string[], runEnv = env): Promise<CliResult | 'timeout'> {
  try {
    return await runCli(args, runEnv, '', RUN_LIMIT_MS);
  } catch {
    return 'timeout';
  }
}

describe('bad input outside HTTP', () => {
  test('the CLI: bad arguments get a usage error with a hint, fast, and never a stack trace', async () => {
    const t = tally('CLI arguments');
    const corpus: Array<[string[], number?]> = [
      [['frobnicate'], ExitCode.usage],
      [['--frobnicate'], ExitCode.usage],
      [['token', '--scopes'], ExitCode.usage],
      [['token', '--scopes', ''], undefined],
      [['token', '--scopes', ',,,'], undefined],
      [['token', '--scopes', Array.from({ length: 100 }, (_, i) => `s${i}`).join(',')], ExitCode.usage],
      [['token', '--scopes', 'x'.repeat(100_000)], ExitCode.usage],
      [['token', '--scopes', 'javascript:alert(1)'], ExitCode.usage],
      [['token', '--account', ''], undefined],
      [['token', '--account', '\u202e@example.com'], undefined],
      [['token', '--json=yes'], ExitCode.usage],
      [['token', 'extra'], ExitCode.usage],
      [['token', '--socket', ''], undefined],
      [['token', '--socket', '/nonexistent/dir/tokend.sock'], ExitCode.daemonUnreachable],
      [['token', '--socket', '/dev/null'], undefined],
      [['token', '--socket', 'relative/tokend.sock'], ExitCode.daemonUnreachable],
      [['token', '--socket', `/${'a'.repeat(200)}/tokend.sock`], undefined],
      [['serve', '--metadata-port', '99999'], ExitCode.config],
      [['serve', '--metadata-port', 'abc'], ExitCode.usage],
      [['serve', '--metadata-port', '-1'], undefined],
      [['serve', '--store', 'nope'], ExitCode.config],
      [['serve', '--log-level', 'loud'], ExitCode.config],
      [['serve', '--log-format', 'xml'], ExitCode.config],
      [['serve', 'extra'], ExitCode.usage],
      [['login'], ExitCode.usage],
      [['login', '--client-secrets'], ExitCode.usage],
      [['login', '--client-secrets', 'x', '--default', '--no-default'], ExitCode.usage],
      [['exec'], ExitCode.usage],
      [['exec', '--'], ExitCode.usage],
      [['exec', '--scopes'], ExitCode.usage],
      [['env', '--shell', 'tcsh-9000'], ExitCode.usage],
      [['env', '--format', 'yaml'], undefined],
      [['default', ''], undefined],
      [['default', 'a', 'b'], ExitCode.usage],
      [['logout', '--account', 'nobody@example.com'], undefined],
      [['store'], undefined],
      [['store', 'migrate', 'nowhere'], undefined],
      [['service'], ExitCode.usage],
      [['service', 'install', '--manager', 'upstart'], ExitCode.usage],
      [['service', 'frobnicate'], ExitCode.usage],
      [['doctor', '--fix'], ExitCode.usage],
      [['--socket'], ExitCode.usage],
      [['-'], undefined],
      [['--'], undefined],
      [['---'], undefined],
      [['--help=1'], undefined],
      [['\u00e9t\u00e9'], ExitCode.usage],
      // Found by the random arguments: a command named like a property of every object.
      [['toString'], ExitCode.usage],
      [['__proto__'], ExitCode.usage],
      [['constructor', '--help'], ExitCode.usage],
    ];
    for (const [args, code] of corpus) judgeCli(t, `tokend ${args.join(' ').slice(0, 80)}`, await cli(args), code === undefined ? undefined : { code });

    const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 30 });
    const word = fc.oneof(
      fc.constantFrom('token', 'status', 'env', 'default', 'logout', 'store', 'version', 'help', '--scopes', '--account', '--json', '--socket', '--shell', '--help', '--version', '--revoke', '--no-revoke', '--format', '-h', '-x', '--', '--=', 'bigquery', 'cloud-platform', ''),
      printable,
      fc.string({ unit: 'grapheme', maxLength: 10 }),
    );
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(word, { minLength: 1, maxLength: 6 }), async (args) => {
          const before = t.problems.length;
          judgeCli(t, `random: tokend ${JSON.stringify(args)}`, await cli(args));
          return t.problems.length === before;
        }),
        { seed, numRuns: FUZZ_RUNS, endOnFailure: true },
      );
    } catch (error) {
      throw new Error(`random arguments failed; replay with TOKEND_FUZZ_SEED=${seed}\n${t.problems.join('\n')}\n${(error as Error).message}`);
    }
    report(t);
  });

  test('the configuration file: every kind of bad file stops the daemon with the file named and the fix, and nothing hangs', async () => {
    const t = tally('configuration file');
    const cases: Array<[string, (file: string) => void]> = [
      ['an unknown key', (f) => writeFileSync(f, '{"stroe": "file"}')],
      ['a wrong type: store 5', (f) => writeFileSync(f, '{"store": 5}')],
      ['a wrong type: metadataPort "abc"', (f) => writeFileSync(f, '{"metadataPort": "abc"}')],
      ['a port out of range', (f) => writeFileSync(f, '{"metadataPort": 70000}')],
      ['a fractional time limit', (f) => writeFileSync(f, '{"upstreamTimeoutMs": 1.5}')],
      ['prefetchScopes a string', (f) => writeFileSync(f, '{"prefetchScopes": "bigquery"}')],
      ['logLevel true', (f) => writeFileSync(f, '{"logLevel": true}')],
      ['an empty socket', (f) => writeFileSync(f, '{"socket": ""}')],
      ['a resourceManagerUrl over plain http elsewhere', (f) => writeFileSync(f, '{"resourceManagerUrl": "http://evil.example"}')],
      ['a relative extraCaCertificates', (f) => writeFileSync(f, '{"extraCaCertificates": "ca.pem"}')],
      ['a zone of junk', (f) => writeFileSync(f, '{"zone": "../../etc"}')],
      ['broken JSON', (f) => writeFileSync(f, '{"store": "file",')],
      ['JSON with comments', (f) => writeFileSync(f, '// tokend\n{"store": "file"}')],
      ['a byte-order mark', (f) => writeFileSync(f, '\ufeff{"store": "file"}')],
      ['an empty file', (f) => writeFileSync(f, '')],
      ['a JSON array', (f) => writeFileSync(f, '[]')],
      ['JSON null', (f) => writeFileSync(f, 'null')],
      ['__proto__', (f) => writeFileSync(f, '{"__proto__": {"store": "file"}}')],
      ['invalid UTF-8', (f) => writeFileSync(f, Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]))],
      ['10 MB of spaces', (f) => writeFileSync(f, `${' '.repeat(10_000_000)}{}x`)],
      ['a FIFO', (f) => execFileSync('mkfifo', ['-m', '0600', f])],
      ['a symbolic link', (f) => {
        writeFileSync(`${f}.real`, '{}', { mode: 0o600 });
        symlinkSync(`${f}.real`, f);
      }],
      ['a directory', (f) => mkdirSync(f)],
      ['writable by others', (f) => {
        writeFileSync(f, '{}');
        chmodSync(f, 0o666);
      }],
      ...(process.getuid?.() === 0
        ? ([
            [
              'owned by another user',
              (f) => {
                writeFileSync(f, '{}', { mode: 0o600 });
                chownSync(f, OTHER_UID, OTHER_GID);
              },
            ],
          ] satisfies Array<[string, (file: string) => void]>)
        : []),
    ];
    for (const [label, make] of cases) {
      const dirs = daemonDirs();
      mkdirSync(dirs.configDir, { recursive: true, mode: 0o700 });
      const file = join(dirs.configDir, 'config.json');
      make(file);
      const runEnv = daemonEnv(dirs, { TOKEND_STORE: 'memory', HOME: join(scratch, 'home') });
      for (const command of [['serve'], ['status']]) {
        judgeCli(t, `${label}: tokend ${command.join(' ')}`, await cli(command, runEnv), { code: ExitCode.config, stderr: /config\.json/ });
      }
    }
    report(t);
  });

  test('the client file: every kind of bad file is refused by `tokend login` with the reason, and nothing hangs', async () => {
    const t = tally('client file');
    const dir = mkdtempSync(join(tmpdir(), 'tokend-client-files-'));
    const valid = JSON.parse(standin.clientSecretsJson()) as { installed: Record<string, unknown> };
    const installed = (fields: Record<string, unknown>) => JSON.stringify({ installed: { ...valid.installed, ...fields } });
    const cases: Array<[string, (file: string) => void, RegExp]> = [
      ['a web client', (f) => writeFileSync(f, JSON.stringify({ web: valid.installed })), /Web application/],
      ['no client_id', (f) => writeFileSync(f, installed({ client_id: undefined })), /client_id/],
      ['a numeric client_secret', (f) => writeFileSync(f, installed({ client_secret: 12 })), /client_secret/],
      ['no token_uri', (f) => writeFileSync(f, installed({ token_uri: undefined })), /token_uri/],
      ['a token_uri that is not a URL', (f) => writeFileSync(f, installed({ token_uri: 'oauth2 token endpoint' })), /token_uri.*not a URL/],
      ['a token_uri over plain http elsewhere', (f) => writeFileSync(f, installed({ token_uri: 'http://evil.example/token' })), /https:\/\//],
      ['a file: token_uri', (f) => writeFileSync(f, installed({ token_uri: 'file:///etc/passwd' })), /https:\/\//],
      ['a javascript: auth_uri', (f) => writeFileSync(f, installed({ auth_uri: 'javascript:alert(1)' })), /auth_uri/],
      ['broken JSON', (f) => writeFileSync(f, '{"installed": {'), /not valid JSON/],
      ['an empty file', (f) => writeFileSync(f, ''), /is empty/],
      ['a JSON array', (f) => writeFileSync(f, '[]'), /not a JSON object|Desktop app/],
      ['binary noise', (f) => writeFileSync(f, Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 31) % 256))), /not valid JSON/],
      ['1 MB', (f) => writeFileSync(f, `{"installed": {"client_id": "${'a'.repeat(1_000_000)}"}}`), /larger than 32 KiB/],
      ['a FIFO', (f) => execFileSync('mkfifo', [f]), /not a regular file/],
      ['a directory', (f) => mkdirSync(f), /not a regular file/],
      ['a missing file', () => undefined, /ENOENT/],
    ];
    for (const [label, make, message] of cases) {
      const file = join(dir, label.replace(/\W+/g, '-'));
      make(file);
      judgeCli(t, `client file: ${label}`, await cli(['login', '--client-secrets', file, '--no-browser']), { code: ExitCode.usage, stderr: message });
    }
    judgeCli(t, 'client file: /dev/zero', await cli(['login', '--client-secrets', '/dev/zero', '--no-browser']), { code: ExitCode.usage, stderr: /not a regular file/ });
    report(t);
  });
});
