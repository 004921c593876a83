/** The CLI's own logic, without a daemon: flags, hints, the environment it prints, the browser decision. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createServer } from 'node:http';
import { after, before, beforeEach, describe, test } from 'node:test';
import { loginCommand } from '../../src/broker/login-command.js';
import { ScopeSet } from '../../src/broker/scopes.js';
import { openBrowser, whyNoBrowser } from '../../src/cli/browser.js';
import { describeUpstream } from '../../src/cli/commands/status.js';
import { main } from '../../src/cli/main.js';
import { TokendClient } from '../../src/client/index.js';
import { UsageError } from '../../src/errors.js';
import { renderResultPage } from '../../src/oauth/result-page.js';

async function cli(args: string[], env: Record<string, string | undefined> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const code = await main(args, { stdout, stderr, stdin: new PassThrough(), env: { HOME: '/home/alice', ...env } });
  return { code, stdout: out, stderr: err };
}

describe('flags', () => {
  test('an unknown flag names the command and the flag that was probably meant', async () => {
    const result = await cli(['token', '--scope', 'bigquery']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'tokend: unknown flag --scope for `tokend token`\nhint: did you mean --scopes? (see `tokend token --help`)\n');
    const typo = await cli(['login', '--client-secret', 'c.json']);
    assert.match(typo.stderr, /did you mean --client-secrets\?/);
    const far = await cli(['status', '--frobnicate']);
    assert.match(far.stderr, /^tokend: unknown flag --frobnicate for `tokend status`\nhint: see `tokend status --help`\n$/);
  });

  test('regression: a command named like an object property (found by the argument fuzzer) is an unknown command', async () => {
    for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf']) {
      const result = await cli([name]);
      assert.equal(result.code, 2, name);
      assert.match(result.stderr, new RegExp(`^tokend: unknown command "${name}"\nhint: commands: serve, `), name);
    }
  });

  test('a flag without its value, and a value given to a switch, are said plainly', async () => {
    assert.match((await cli(['token', '--scopes'])).stderr, /^tokend: --scopes needs a value\n/);
    assert.match((await cli(['token', '--json=yes'])).stderr, /^tokend: --json takes no value\n/);
    assert.match((await cli(['token', 'extra'])).stderr, /^tokend: `tokend token` takes no argument "extra"\n/);
  });
});

describe('hints that can be pasted', () => {
  test('the login command names the client file, the scopes and the account, quoted for a shell', () => {
    assert.equal(
      loginCommand({ clientFile: '/home/alice/My Client.json', scopes: ScopeSet.parse('bigquery openid'), loginHint: 'bob@example.com' }),
      "tokend login --client-secrets '/home/alice/My Client.json' --scopes bigquery --login-hint bob@example.com",
    );
    assert.equal(loginCommand({}), 'tokend login --client-secrets client_secrets.json --scopes cloud-platform');
  });

  test('every error needs a hint: the type system refuses one without', () => {
    // @ts-expect-error a TokendError cannot be built without a hint (the typecheck fails if it can)
    const error = new UsageError('no hint', {});
    assert.equal(error.hint, undefined, 'only reachable by defeating the type');
  });
});

describe('tokend env', () => {
  test('prints where the socket is, resolved like every command, as sh, fish or JSON', async () => {
    const sh = await cli(['env'], { XDG_RUNTIME_DIR: '/run/user/1000' });
    assert.equal(sh.code, 0);
    assert.equal(sh.stdout, 'export TOKEND_SOCKET=/run/user/1000/tokend/tokend.sock;\n');
    const noRuntime = await cli(['env'], {});
    assert.equal(noRuntime.stdout, 'export TOKEND_SOCKET=/home/alice/.local/state/tokend/tokend.sock;\n');
    const fish = await cli(['env', '--shell', 'fish'], { TOKEND_SOCKET: "/tmp/it's here.sock" });
    assert.equal(fish.stdout, "set -gx TOKEND_SOCKET '/tmp/it'\\''s here.sock';\n");
    const json = await cli(['env', '--json', '--socket', '/x/y.sock']);
    assert.deepEqual(JSON.parse(json.stdout), { TOKEND_SOCKET: '/x/y.sock' });
    assert.match((await cli(['env', '--shell', 'csh'])).stderr, /unknown shell "csh"/);
  });

  test('serve --help shows the socket this user would get, not a path that may not apply', async () => {
    const help = await cli(['serve', '--help'], {});
    assert.match(help.stdout, /--socket PATH {9}the Unix socket \(here: \/home\/alice\/\.local\/state\/tokend\/tokend\.sock\)/);
    const fromEnv = await cli(['serve', '--help'], { TOKEND_SOCKET: '/s/t.sock' });
    assert.match(fromEnv.stdout, /\(here: \/s\/t\.sock, from TOKEND_SOCKET=\/s\/t\.sock\)/);
  });

  test('new TokendClient() with no options uses the socket the CLI would', () => {
    const saved = process.env.TOKEND_SOCKET;
    process.env.TOKEND_SOCKET = '/tmp/tokend-client-default.sock';
    try {
      assert.equal(new TokendClient().socketPath, '/tmp/tokend-client-default.sock');
    } finally {
      if (saved === undefined) delete process.env.TOKEND_SOCKET;
      else process.env.TOKEND_SOCKET = saved;
    }
  });
});

describe('the browser', () => {
  test('over SSH, or on Linux without a display, no browser is opened; $BROWSER overrides both', () => {
    assert.match(whyNoBrowser({ SSH_CONNECTION: '10.0.0.2 5555 10.0.0.1 22', DISPLAY: ':0' }, 'linux') ?? '', /SSH session/);
    assert.match(whyNoBrowser({}, 'linux') ?? '', /no display/);
    assert.equal(whyNoBrowser({ WAYLAND_DISPLAY: 'wayland-0' }, 'linux'), undefined);
    assert.equal(whyNoBrowser({}, 'darwin'), undefined);
    assert.equal(whyNoBrowser({ SSH_TTY: '/dev/pts/1', BROWSER: 'w3m' }, 'linux'), undefined);
  });

  test('an opener that exits non-zero has not opened anything; one still running after the verdict time has', async () => {
    const failed = await openBrowser('http://127.0.0.1:1/start/x', { BROWSER: 'exit 3;' });
    assert.deepEqual(failed, { opened: false, how: '$BROWSER (exit 3;) failed (exit status 3)' });
    const running = await openBrowser('http://127.0.0.1:1/start/x', { BROWSER: 'sleep 5 #' }, 200);
    assert.equal(running.opened, true, 'a browser that keeps running is taken as opened');
    assert.equal((await openBrowser('http://127.0.0.1:1/start/x', { BROWSER: 'true' })).opened, true);
  });
});

describe('what people read', () => {
  test('waits are said as the setting is given (seconds, minutes), never in ms', async () => {
    const { formatWait } = await import('../../src/oauth/consent.js');
    assert.equal(formatWait(300_000), '5 min');
    assert.equal(formatWait(45_000), '45 s');
    assert.equal(formatWait(90_000), '1 min 30 s');
  });

  test('a bad client file is named; a Web client is told to create a Desktop app client, not to download again', async () => {
    const { parseClientSecrets } = await import('../../src/oauth/client-config.js');
    assert.throws(() => parseClientSecrets('{oops', '/home/alice/client.json'), /^InvalidClientSecretsError: \/home\/alice\/client\.json is not valid JSON$/);
    assert.throws(
      () => parseClientSecrets('{"web": {}}', '/home/alice/web.json'),
      (error: Error & { hint?: string }) =>
        /\/home\/alice\/web\.json is a "Web application" client/.test(error.message) && /create an OAuth client ID of type "Desktop app"/.test(error.hint ?? ''),
    );
  });

  test('status names a failing upstream first, with when and why, and the last success', () => {
    const now = Date.parse('2026-12-02T10:00:00Z');
    assert.equal(
      describeUpstream(
        {
          lastSuccess: '2026-12-02T09:46:00Z',
          lastFailure: { at: '2026-12-02T09:59:50Z', reason: 'refreshing: the OAuth server at oauth2.googleapis.com answered HTTP 503' },
          pause: { seconds: 20, reason: 'x' },
        },
        now,
      ),
      'FAILING — last failure 10s ago, refreshing: the OAuth server at oauth2.googleapis.com answered HTTP 503; tokend holds off the OAuth server for 20s more; last success 14m00s ago',
    );
    assert.equal(describeUpstream({ lastSuccess: null, lastFailure: null, pause: null }, now), undefined);
  });

  test('result pages show commands as code, list scopes with spaces, and a partial grant as a warning', () => {
    const html = renderResultPage({ outcome: 'partial', heading: 'Signed in', lines: ['Run `tokend login --scopes a,b` <now>.'] });
    assert.match(html, /<p>Run <code>tokend login --scopes a,b<\/code> &#60;now&#62;\.<\/p>/);
    assert.match(html, /data-outcome="partial"/);
    assert.match(html, /h1\{color:#b06000/, 'amber, not the red of a failure');
    assert.match(renderResultPage({ outcome: 'failed', heading: 'x', lines: [] }), /h1\{color:#c5221f/);
    assert.equal(ScopeSet.parse('bigquery cloud-platform').toDisplayList(), 'bigquery, cloud-platform');
  });
});

describe('test requirements (test helper)', () => {
  test('a skip names every missing tool and all their packages, not just the first', async () => {
    const { skipUnless } = await import('../helpers/requirements.js');
    const saved = process.env.CI;
    delete process.env.CI;
    try {
      const reason = skipUnless(
        { binaries: ['no-such-tool-a'], aptPackages: ['pkg-a'] },
        { binaries: ['sh'], aptPackages: ['dash'] },
        { binaries: ['no-such-tool-b', 'no-such-tool-c'], aptPackages: ['pkg-b', 'pkg-a'] },
      );
      assert.equal(reason, 'needs no-such-tool-a, no-such-tool-b, no-such-tool-c: apt-get install pkg-a pkg-b');
    } finally {
      if (saved !== undefined) process.env.CI = saved;
    }
  });
});

/** Answers `status` on a Unix socket as a daemon would, with its listener and project number as given. */
async function statusServer(status: () => unknown): Promise<{ socket: string; close(): void }> {
  const socket = join(mkdtempSync(join(tmpdir(), 'tokend-env-')), 'tokend.sock');
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(status())));
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { socket, close: () => server.close() };
}

describe('tokend env and the metadata listener', () => {
  let daemon: { socket: string; close(): void };
  let metadata: unknown = { port: 8085, addresses: ['127.0.0.1'], peerCheck: 'uid' };
  let projectNumber: unknown = { state: 'found', projectId: 'p', projectNumber: '1' };
  before(async () => (daemon = await statusServer(() => ({ daemon: { metadata }, projectNumber }))));
  after(() => daemon.close());
  beforeEach(() => {
    metadata = { port: 8085, addresses: ['127.0.0.1'], peerCheck: 'uid' };
    projectNumber = { state: 'found', projectId: 'p', projectNumber: '1' };
  });

  test('with a listener, all three GCE_METADATA_* variables point at it', async () => {
    const sh = await cli(['env'], { TOKEND_SOCKET: daemon.socket, TOKEND_METADATA_PORT: '8085' });
    assert.equal(
      sh.stdout,
      `export GCE_METADATA_HOST=127.0.0.1:8085;\nexport GCE_METADATA_IP=127.0.0.1:8085;\nexport GCE_METADATA_ROOT=127.0.0.1:8085;\nexport TOKEND_SOCKET=${daemon.socket};\n`,
    );
    assert.equal(sh.stderr, '');
  });

  test('the running daemon\'s listener wins over this shell\'s configuration, both ways', async () => {
    // Started as README says (`TOKEND_METADATA_PORT=8085 tokend serve`): this shell has no such variable.
    metadata = { port: 9123, addresses: ['127.0.0.1'], peerCheck: 'uid' };
    const found = await cli(['env', '--json'], { TOKEND_SOCKET: daemon.socket });
    assert.equal(JSON.parse(found.stdout).GCE_METADATA_ROOT, '127.0.0.1:9123');
    assert.equal(found.stderr, '');
    metadata = null;
    const none = await cli(['env'], { TOKEND_SOCKET: daemon.socket, TOKEND_METADATA_PORT: '8085' });
    assert.doesNotMatch(none.stdout, /GCE_METADATA/, 'not pointed at a port the daemon does not listen on');
    assert.match(none.stderr, /^warning: the running daemon has no metadata listener.*set TOKEND_METADATA_PORT=8085 \(or "metadataPort": 8085 in .*config\.json\) for the daemon and restart it/m);
  });

  test('no daemon: the configuration is taken at its word, with a warning that says how to start it', async () => {
    const socket = join(tmpdir(), 'no-such-tokend', 'tokend.sock');
    const configured = await cli(['env'], { TOKEND_SOCKET: socket, TOKEND_METADATA_PORT: '8085' });
    assert.equal(configured.code, 0);
    assert.match(configured.stdout, /^export GCE_METADATA_HOST=127\.0\.0\.1:8085;$/m);
    assert.match(configured.stderr, /^warning: no tokend is running on .*no-such-tokend\/tokend\.sock.*, so programs pointed at it get no tokens: start it with `tokend serve`/m);
    const off = await cli(['env'], { TOKEND_SOCKET: socket });
    assert.doesNotMatch(off.stdout, /GCE_METADATA/);
    assert.match(off.stderr, /^warning: the metadata listener is off.*TOKEND_METADATA_PORT=8085/m);
  });

  test('each cause that would make clients ignore tokend is warned about when present, and not otherwise', async () => {
    const gcloud = mkdtempSync(join(tmpdir(), 'tokend-gcloud-'));
    const base = { TOKEND_SOCKET: daemon.socket, TOKEND_METADATA_PORT: '8085', CLOUDSDK_CONFIG: gcloud };
    assert.equal((await cli(['env'], base)).stderr, '', 'a clean environment gets no warning');

    assert.match((await cli(['env'], { ...base, GOOGLE_APPLICATION_CREDENTIALS: '/k.json' })).stderr, /GOOGLE_APPLICATION_CREDENTIALS is set \(\/k\.json\).*`unset GOOGLE_APPLICATION_CREDENTIALS`/);
    writeFileSync(join(gcloud, 'application_default_credentials.json'), '{}');
    mkdirSync(join(gcloud, 'configurations'));
    writeFileSync(join(gcloud, 'configurations', 'config_default'), '[core]\naccount = bob@example.com\nproject = p\n');
    writeFileSync(join(gcloud, 'gce'), 'False');
    const all = (await cli(['env'], base)).stderr;
    assert.match(all, /application_default_credentials\.json exists.*gcloud auth application-default revoke/);
    assert.match(all, /gcloud is logged in as bob@example\.com.*`gcloud config unset account`/);
    assert.match(all, new RegExp(`remembered that it found no metadata server.*\`rm ${gcloud}/gce\``));
    assert.doesNotMatch(all, /GOOGLE_APPLICATION_CREDENTIALS/);
    writeFileSync(join(gcloud, 'configurations', 'config_default'), '[compute]\naccount = not-core@example.com\n');
    assert.doesNotMatch((await cli(['env'], base)).stderr, /logged in as/, 'an account outside [core] is not gcloud\'s account');
  });

  test('the daemon\'s word on the project number: a warning with its reason and hint when unknown, none otherwise', async () => {
    const env = { TOKEND_SOCKET: daemon.socket, CLOUDSDK_CONFIG: mkdtempSync(join(tmpdir(), 'tokend-gcloud-')) };
    projectNumber = { state: 'unknown', projectId: 'p', reason: 'WHY', hint: 'HOW' };
    assert.equal((await cli(['env'], env)).stderr, 'warning: gcloud ignores the metadata listener while the project number is unknown (WHY): HOW\n');
    for (const known of [{ state: 'looking', projectId: 'p' }, { state: 'configured', projectNumber: '2' }]) {
      projectNumber = known;
      assert.equal((await cli(['env'], env)).stderr, '', known.state);
    }
  });
});
