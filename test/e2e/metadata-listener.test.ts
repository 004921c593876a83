/**
 * The opt-in metadata listener on loopback TCP, with the real daemon: the tree as Google's clients
 * read it, its headers on every answer, the refusals that keep web pages, relays and other local users
 * out, and google-auth-library finding it with nothing but the environment `tokend env` prints.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { BIN, daemonDirs, daemonEnv, freePort, runCli, startDaemonProcess, stopAllDaemons, type DaemonProcess, loginByPasteBack } from '../helpers/daemon-process.js';
import { startBigQueryStandin, type BigQueryStandin } from '../helpers/bigquery-standin.js';
import { startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { startResourceManagerStandin, type ResourceManagerStandin } from '../helpers/resource-manager-standin.js';
import { getMetadata } from '../helpers/metadata-client.js';
import { requirements, skipUnless, which } from '../helpers/requirements.js';
import { runAsOtherUser, skipUnlessSecondUser } from '../helpers/second-user.js';

const G = 'https://www.googleapis.com/auth/';
const EMAIL = 'alice@example.com';
const V1 = '/computeMetadata/v1';
const ROOT = new URL('../..', import.meta.url).pathname;

let standin: StandinHandle;
let bigquery: BigQueryStandin;
let resourceManager: ResourceManagerStandin;
let daemon: DaemonProcess;
let env: NodeJS.ProcessEnv;
let port: number;

before(async () => {
  standin = await startStandin();
  bigquery = await startBigQueryStandin(standin);
  resourceManager = await startResourceManagerStandin(standin, { 'tokend-test': '123456789012' });
  const dirs = daemonDirs();
  port = await freePort();
  env = daemonEnv(dirs, { TOKEND_STORE: 'memory', TOKEND_METADATA_PORT: String(port), TOKEND_RESOURCE_MANAGER_URL: resourceManager.endpoint, BROWSER: 'false' });
  daemon = await startDaemonProcess({ name: 'metadata-listener', env, socket: dirs.socket });
  const clientFile = standin.writeClientSecrets(dirs.root);
  assert.equal((await loginByPasteBack(['--client-secrets', clientFile, '--scopes', 'bigquery,cloud-platform', '--default'], env)).code, 0);
});
after(async () => {
  await stopAllDaemons();
  await bigquery?.stop();
  await resourceManager?.stop();
  await standin?.stop();
});

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => getMetadata(port, path, headers, method);

describe('the metadata tree on TCP', () => {
  const routes: Array<[string, number]> = [
    ['/', 200],
    [`${V1}`, 301],
    [`${V1}/`, 200],
    [`${V1}/instance`, 200],
    [`${V1}/instance/`, 200],
    [`${V1}/instance/service-accounts`, 301],
    [`${V1}/instance/service-accounts/`, 200],
    [`${V1}/instance/service-accounts/?recursive=true`, 200],
    [`${V1}/instance/service-accounts/default`, 301],
    [`${V1}/instance/service-accounts/default/`, 200],
    [`${V1}/instance/service-accounts/default/?recursive=true`, 200],
    [`${V1}/instance/service-accounts/${EMAIL}/?recursive=true`, 200],
    [`${V1}/instance/service-accounts/default/email`, 200],
    [`${V1}/instance/service-accounts/default/scopes`, 200],
    [`${V1}/instance/service-accounts/default/aliases`, 200],
    [`${V1}/instance/service-accounts/default/token`, 200],
    [`${V1}/instance/service-accounts/default/token?scopes=bigquery`, 200],
    [`${V1}/instance/service-accounts/${EMAIL}/token?scopes=${encodeURIComponent(`${G}bigquery`)}`, 200],
    [`${V1}/instance/service-accounts/default/identity?audience=x`, 404],
    [`${V1}/instance/zone`, 404],
    [`${V1}/project/`, 200],
    [`${V1}/project/project-id`, 200],
    [`${V1}/project/numeric-project-id`, 200],
    [`${V1}/universe/universe-domain`, 200],
    [`${V1}/universe/universe_domain`, 404],
    [`${V1}/no/such/path`, 404],
    ['/tokend/v1/status', 404],
  ];

  test('every route, errors and redirects included, answers with Metadata-Flavor: Google, exact content types, and no CORS header', async () => {
    for (const [path, status] of routes) {
      const answer = await get(path);
      assert.equal(answer.status, status, `${path}: ${answer.body}`);
      assert.equal(answer.headers['metadata-flavor'], 'Google', path);
      assert.deepEqual(Object.keys(answer.headers).filter((name) => name.startsWith('access-control-')), [], path);
      if (answer.body.startsWith('{')) assert.equal(answer.headers['content-type'], 'application/json', path);
      else if (status === 200) assert.equal(answer.headers['content-type'], 'application/text', path);
    }
  });

  test('the values Google\'s clients and gcloud read', async () => {
    const token = JSON.parse((await get(`${V1}/instance/service-accounts/default/token?scopes=bigquery`)).body);
    assert.deepEqual(Object.keys(token).sort(), ['access_token', 'expires_in', 'token_type']);
    assert.ok(Number.isInteger(token.expires_in) && token.expires_in > 300, `expires_in ${token.expires_in}`);
    assert.equal((await standin.introspect(token.access_token)).scope, `${G}bigquery`);
    const all = JSON.parse((await get(`${V1}/instance/service-accounts/?recursive=true`)).body);
    assert.deepEqual(Object.keys(all).sort(), [EMAIL, 'default']);
    assert.deepEqual(all.default, { aliases: ['default'], email: EMAIL, scopes: [`${G}bigquery`, `${G}cloud-platform`] });
    assert.equal((await get(`${V1}/instance/service-accounts/default/email`)).body, EMAIL);
    assert.equal((await get(`${V1}/project/project-id`)).body, 'tokend-test');
    assert.equal((await get(`${V1}/project/numeric-project-id`)).body, '123456789012');
    assert.equal((await get(`${V1}/instance/service-accounts/`)).body, `default/\n${EMAIL}/\n`);
  });

  test('a request a web page, a relay or a rebinding DNS name could send is refused with a 403 that names the rule and no account', async () => {
    const refused: Array<[string, Record<string, string>, string?]> = [
      ['foreign Host (DNS rebinding)', { host: `evil.example:${port}` }],
      ['Host without the port', { host: '127.0.0.1' }],
      ['Origin', { origin: 'https://evil.example' }],
      ['X-Forwarded-For', { 'x-forwarded-for': '10.0.0.1' }],
      ['Forwarded', { forwarded: 'for=10.0.0.1' }],
      ['X-Real-IP', { 'x-real-ip': '10.0.0.1' }],
      ['OPTIONS (CORS preflight)', { 'access-control-request-method': 'GET' }, 'OPTIONS'],
    ];
    for (const [what, headers, method] of refused) {
      const answer = await get(`${V1}/instance/service-accounts/default/token`, headers, method);
      assert.equal(answer.status, 403, `${what}: ${answer.body}`);
      assert.equal(answer.headers['metadata-flavor'], 'Google', what);
      assert.doesNotMatch(answer.body, /alice|access_token/, `${what} reveals nothing about accounts`);
      assert.match(JSON.parse(answer.body).error.code, /^(request_refused|proxied_request)$/, what);
    }
    for (const host of ['metadata.google.internal', `metadata.google.internal:${port}`, `localhost:${port}`]) {
      assert.equal((await get(`${V1}/instance/service-accounts/default/email`, { host })).status, 200, host);
    }
    const noFlavor = await get(`${V1}/instance/service-accounts/default/token`, { 'metadata-flavor': 'nope' });
    assert.equal(noFlavor.status, 403);
    assert.equal((await get('/', { 'metadata-flavor': '' })).status, 200, 'the root ping needs no flavor');
    assert.match(daemon.log(), /"event":"metadata_refused","rule":"host"/);
  });

  test('a cache hit, answered before routing, is the routed answer byte for byte; what is refused or unusual is routed as before', async () => {
    const path = `${V1}/instance/service-accounts/default/token?scopes=${encodeURIComponent(`${G}cloud-platform`)}`;
    const refusedHeaders: Array<Record<string, string>> = [{ origin: 'https://evil.example' }, { host: `evil.example:${port}` }, { via: '1.1 proxy' }, { 'metadata-flavor': 'nope' }];
    // A scope set no test asked for before: the first answer is a refresh, routed; the second a hit.
    const miss = await get(path);
    const hit = await get(path);
    assert.equal(miss.status, 200, miss.body);
    assert.equal(hit.status, 200, hit.body);
    const shape = (answer: typeof miss) => Object.entries(answer.headers).filter(([name]) => name !== 'date');
    assert.deepEqual(shape(hit), shape(miss), 'the same headers, in the same order');
    const [missToken, hitToken] = [JSON.parse(miss.body), JSON.parse(hit.body)];
    assert.equal(hitToken.access_token, missToken.access_token);
    assert.deepEqual(Object.keys(hitToken), Object.keys(missToken));
    assert.equal(hit.body, JSON.stringify(hitToken), 'the same JSON text');
    // A cached token does not make a refused request an answered one.
    for (const headers of refusedHeaders) {
      assert.equal((await get(path, headers)).status, 403, JSON.stringify(headers));
    }
    // Forms the fast path leaves to the router get the router's answers.
    assert.equal((await get(`${V1}/instance/service-accounts/default/token?scopes=bigquery&scopes=cloud-platform`)).status, 400);
    const plus = await get(`${V1}/instance/service-accounts/default/token?scopes=bigquery+cloud-platform`);
    assert.equal(plus.status, 200, plus.body);
    assert.equal((await standin.introspect(JSON.parse(plus.body).access_token)).scope, `${G}bigquery ${G}cloud-platform`);
    assert.equal((await get(`${V1}/instance/service-accounts/nobody%40example.com/token`)).status, 404);
  });

  test('another local user\'s connection is dropped before anything is read', { skip: skipUnlessSecondUser() }, async () => {
    // A raw socket, not fetch: undici's fetch never settles when the server drops the connection
    // before the request is written (the script then exits 13 with nothing printed).
    const source = `
      import { connect } from 'node:net';
      const socket = connect(${port}, '127.0.0.1');
      let received = '';
      socket.on('data', (chunk) => (received += chunk));
      socket.on('error', () => {});
      socket.on('close', () => {
        console.log(received === '' ? 'refused: closed with nothing sent' : 'answered ' + received);
        process.exit(0);
      });
      socket.write('GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nMetadata-Flavor: Google\\r\\n\\r\\n');
      setTimeout(() => { console.log('still open after 5 s'); process.exit(0); }, 5000);
    `;
    const result = await runAsOtherUser(source);
    assert.match(result.stdout, /^refused: closed with nothing sent/, result.stdout + result.stderr);
    assert.match(daemon.log(), /"event":"connection_refused","listener":"metadata"/);
  });
});

/**
 * A fresh login shell: no gcloud files, no key file, and no TOKEND_METADATA_PORT — the daemon was
 * started with it, as README says, and `tokend env` finds the listener by asking the daemon.
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const home = mkdtempSync(join(tmpdir(), 'tokend-adc-'));
  return {
    PATH: process.env.PATH,
    HOME: home,
    CLOUDSDK_CONFIG: join(home, 'gcloud'),
    TOKEND_SOCKET: env.TOKEND_SOCKET,
    TOKEND_CONFIG_DIR: env.TOKEND_CONFIG_DIR,
  };
}

describe('tokend env, evaluated by real shells', { skip: skipUnless(requirements.fish) }, () => {
  test('bash and fish end up with exactly the variables it prints', async () => {
    const run = promisify(execFile);
    const expected = `127.0.0.1:${port} 127.0.0.1:${port} 127.0.0.1:${port} ${env.TOKEND_SOCKET}`;
    const bash = await run('bash', ['-c', `eval "$(${process.execPath} ${BIN} env)" && echo "$GCE_METADATA_HOST $GCE_METADATA_IP $GCE_METADATA_ROOT $TOKEND_SOCKET"`], { env: cleanEnv() });
    assert.equal(bash.stdout.trim(), expected);
    assert.equal(bash.stderr, '', 'no warning in a clean environment');
    const fish = await run('fish', ['--no-config', '-c', `${process.execPath} ${BIN} env --shell fish | source; echo "$GCE_METADATA_HOST $GCE_METADATA_IP $GCE_METADATA_ROOT $TOKEND_SOCKET"`], { env: cleanEnv() });
    assert.equal(fish.stdout.trim(), expected);
  });
});

describe('Google\'s own client libraries, unmodified', () => {
  test('GoogleAuth finds the listener from `tokend env` alone, picks Compute, and gets a token of exactly the scopes it asked for', async () => {
    const script = join(mkdtempSync(join(tmpdir(), 'tokend-adc-')), 'adc.cjs');
    writeFileSync(
      script,
      `const { GoogleAuth } = require(${JSON.stringify(join(ROOT, 'node_modules/google-auth-library'))});
       const gcpMetadata = require(${JSON.stringify(join(ROOT, 'node_modules/gcp-metadata'))});
       (async () => {
         const auth = new GoogleAuth({ scopes: ['${G}bigquery'] });
         const client = await auth.getClient();
         const { token } = await client.getAccessToken();
         const email = await gcpMetadata.instance('service-accounts/default/email');
         const project = await auth.getProjectId();
         console.log(JSON.stringify({ kind: client.constructor.name, token, email, project }));
       })().catch((error) => { console.error(error); process.exit(1); });`,
    );
    const shell = `eval "$(${process.execPath} ${BIN} env)" && exec ${process.execPath} ${script}`;
    const { stdout } = await promisify(execFile)('bash', ['-c', shell], { env: cleanEnv(), timeout: 30_000 });
    const result = JSON.parse(stdout);
    assert.equal(result.kind, 'Compute');
    assert.equal(result.email, EMAIL);
    assert.equal(result.project, 'tokend-test');
    assert.equal((await standin.introspect(result.token)).scope, `${G}bigquery`, 'exactly the scopes asked for');
    const status = await runCli(['status'], env);
    assert.match(status.stdout, new RegExp(`^metadata: 127\\.0\\.0\\.1 port ${port}, your own user only$`, 'm'));
  });

  test('gcloud, with no gcloud login, detects the listener, shows the account and project, and prints a token that is active upstream', { skip: skipUnless(requirements.gcloud) }, async () => {
    const environment = cleanEnv();
    const shell = (args: string) => `eval "$(${process.execPath} ${BIN} env)" && gcloud ${args}`;
    const run = promisify(execFile);
    const token = await run('bash', ['-c', shell('auth print-access-token')], { env: environment, timeout: 90_000 });
    const introspection = await standin.introspect(token.stdout.trim());
    assert.equal(introspection.active, true, `gcloud printed a live token: ${token.stderr}`);
    assert.equal(introspection.scope, `${G}bigquery ${G}cloud-platform`, 'the account\'s default scopes: gcloud asks for none');
    const config = await run('bash', ['-c', shell('config list --format=json')], { env: environment, timeout: 90_000 });
    const core = JSON.parse(config.stdout).core;
    assert.equal(core.account, EMAIL);
    assert.equal(core.project, 'tokend-test');
  });

  test('bq, with no gcloud login, runs a query with a token from the listener', { skip: skipUnless(requirements.gcloud) }, async () => {
    const discovery = join(dirname(dirname(realpathSync(which('bq')!))), 'platform/bq/discovery_next/bigquery.json');
    const before = bigquery.requests.length;
    const query = "SELECT name, SUM(number) as total FROM `bigquery-public-data.usa_names.usa_1910_current` WHERE name = 'William' GROUP BY name";
    const shell = `eval "$(${process.execPath} ${BIN} env)" && bq --api=${bigquery.endpoint} --discovery_file=${discovery} --format=json query --nouse_legacy_sql "$QUERY"`;
    const result = await promisify(execFile)('bash', ['-c', shell], { env: { ...cleanEnv(), QUERY: query }, timeout: 90_000 });
    assert.deepEqual(JSON.parse(result.stdout), [{ name: 'William', total: '4010729' }], result.stderr);
    const made = bigquery.requests.slice(before);
    assert.ok(made.some((request) => request.method === 'POST' && request.path.endsWith('/projects/tokend-test/jobs')), `bq inserted a job in the project tokend named: ${JSON.stringify(made)}`);
    assert.ok(made.length > 0 && made.every((request) => request.authorized), 'every call carried a live token with a BigQuery scope');
  });

  test('TokendAuthClient gets its token over the socket from the real daemon, with exactly the scopes asked for', async () => {
    const { TokendAuthClient } = await import('../../src/client/index.js');
    const auth = new TokendAuthClient({ socketPath: env.TOKEND_SOCKET!, scopes: ['bigquery'] });
    const { token } = await auth.getAccessToken();
    assert.equal((await standin.introspect(token!)).scope, `${G}bigquery`);
    assert.equal(await auth.getAccount(), EMAIL);
  });

  test('Python\'s google-auth (Debian\'s): google.auth.default() and compute_engine.Credentials refresh against the listener', { skip: skipUnless(requirements.pythonGoogleAuth) }, async () => {
    const script = join(mkdtempSync(join(tmpdir(), 'tokend-py-')), 'adc.py');
    writeFileSync(
      script,
      [
        'import json, google.auth, google.auth.transport.requests as tr',
        'from google.auth import compute_engine',
        'creds, project = google.auth.default()',
        'creds.refresh(tr.Request())',
        'ce = compute_engine.Credentials()',
        'ce.refresh(tr.Request())',
        'print(json.dumps({"type": type(creds).__name__, "token": creds.token, "project": project, "email": ce.service_account_email, "token2": ce.token}))',
      ].join('\n'),
    );
    const shell = `eval "$(${process.execPath} ${BIN} env)" && exec /usr/bin/python3 ${script}`;
    const { stdout } = await promisify(execFile)('bash', ['-c', shell], { env: cleanEnv(), timeout: 30_000 });
    const result = JSON.parse(stdout);
    assert.equal(result.type, 'Credentials');
    assert.equal(result.project, 'tokend-test');
    assert.equal(result.email, EMAIL);
    for (const token of [result.token, result.token2]) {
      assert.equal((await standin.introspect(token)).active, true, 'a live token');
    }
  });
});

describe('the project number gcloud needs', () => {
  test('was looked up once, from the Resource Manager with the account\'s own token, and is shown by status', async () => {
    assert.equal((await get(`${V1}/project/numeric-project-id`)).body, '123456789012');
    assert.deepEqual(resourceManager.requests, [{ path: '/v1/projects/tokend-test', scope: `${G}cloud-platform`, status: 200 }], 'one lookup for the whole run, narrowed to cloud-platform');
    assert.match((await runCli(['status'], env)).stdout, /^project: {2}tokend-test, number 123456789012 \(from the Resource Manager\)$/m);
    assert.match(daemon.log(), /"event":"project_number_found","project":"tokend-test","project_number":"123456789012"/);
  });
});
