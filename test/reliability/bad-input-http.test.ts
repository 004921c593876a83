/**
 * The bad-input suite, HTTP part: a generated corpus and seeded random requests (fast-check) against
 * the real daemon's Unix socket and metadata listener, as raw bytes on real sockets. Every case must
 * get a clear 4xx (or a normal answer) in tokend's error format, never a 5xx without cause, never a
 * glimpse of internals, and the daemon must answer a normal request after every case.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { after, before, describe, test } from 'node:test';
import { fuzzSeed, judge, report, tally, type Tally } from '../helpers/bad-input.js';
import { obtainRedirectUrl } from '../helpers/consent-driver.js';
import { AUTH_URL_LINE, daemonDirs, daemonEnv, freePort, loginByPasteBack, startCli, startDaemonProcess, stopAllDaemons, type DaemonProcess } from '../helpers/daemon-process.js';
import { CALLBACK_PATH, startStandin, type StandinHandle } from '../helpers/oauth-standin.js';
import { exchange, open, request, type Target } from '../helpers/raw-http.js';

const G = 'https://www.googleapis.com/auth/';
const V1 = '/computeMetadata/v1';
const TOKEN = `${V1}/instance/service-accounts/default/token`;
const FUZZ_RUNS = 400;

let standin: StandinHandle;
let daemon: DaemonProcess;
let env: NodeJS.ProcessEnv;
let clientFile: string;
let port: number;
let unix: Target;
let tcp: Target;
const seed = fuzzSeed();

before(async () => {
  standin = await startStandin();
  const dirs = daemonDirs();
  port = await freePort();
  env = daemonEnv(dirs, { TOKEND_STORE: 'memory', TOKEND_METADATA_PORT: String(port), TOKEND_PROJECT_NUMBER: '123456789012', BROWSER: 'false' });
  daemon = await startDaemonProcess({ name: 'bad-input-http', env, socket: dirs.socket });
  clientFile = standin.writeClientSecrets(dirs.root);
  assert.equal((await loginByPasteBack(['--client-secrets', clientFile, '--scopes', 'bigquery,cloud-platform'], env)).code, 0);
  unix = { socketPath: dirs.socket };
  tcp = { port };
});
after(async () => {
  await stopAllDaemons();
  await standin?.stop();
});

/** The daemon is still there and answers a normal token request on `target`. */
async function assertServes(t: Tally, target: Target, host: string): Promise<void> {
  if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) {
    t.crashes++;
    report(t);
    assert.fail(`the daemon died (${daemon.child.exitCode ?? daemon.child.signalCode}):\n${daemon.log().slice(-2000)}`);
  }
  const answer = await exchange(target, request(`${TOKEN}?scopes=bigquery`, { host }));
  assert.equal(answer.responses[0]?.status, 200, `a normal request after the bad ones: ${JSON.stringify(answer)}`);
}

interface Case {
  label: string;
  bytes: string | Buffer;
  answerRequired?: boolean;
  statuses?: number[];
  /** Half-close after writing. */
  end?: boolean;
  expect?: number;
}

/** Requests no well-behaved client sends, for either listener; `host` is a Host the listener accepts. */
function corpus(host: string): Case[] {
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => request(path, { host, ...headers }, method);
  const cases: Case[] = [];
  for (const method of ['HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'TRACE', 'PROPFIND', 'get', 'SEARCH', 'MKCOL', 'X'.repeat(300)]) {
    cases.push({ label: `method ${method.slice(0, 20)}`, bytes: get(TOKEN, {}, method) });
  }
  cases.push({ label: 'CONNECT', bytes: `CONNECT 127.0.0.1:443 HTTP/1.1\r\nhost: ${host}\r\n\r\n` });
  cases.push({ label: 'a method with a NUL', bytes: `G\0T ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\n\r\n` });
  const paths = [
    '/../../../../etc/passwd',
    `${V1}/instance/service-accounts/../../../../etc/passwd`,
    `${V1}/instance/service-accounts/..%2f..%2f..%2fetc%2fpasswd/token`,
    `${V1}/instance/service-accounts/%2e%2e/token`,
    `${V1}/instance/service-accounts/default%2ftoken`,
    '/computeMetadata%2fv1%2finstance%2fservice-accounts%2fdefault%2ftoken',
    `//computeMetadata//v1//instance/service-accounts/default/token`,
    `${V1}/instance/service-accounts/default/token/`,
    `${V1}/instance/service-accounts/default/token/extra`,
    `${V1}/instance/service-accounts/default/token;jsessionid=1`,
    '/%00',
    `${V1}/instance/service-accounts/default%00/token`,
    '/%ff%fe%fd',
    `${V1}/instance/service-accounts/%C3%28/token`,
    '/%',
    '/%zz',
    '*',
    `http://evil.example${TOKEN}`,
    `/${'a'.repeat(8000)}`,
    `${V1}/instance/service-accounts/${'x'.repeat(2000)}@example.com/token`,
    `${V1}/${'../'.repeat(500)}`,
    '/tokend/v1/../../computeMetadata/v1/instance/service-accounts/default/token',
    '/tokend/v1/token/../status',
  ];
  for (const path of paths) cases.push({ label: `path ${path.slice(0, 60)}`, bytes: get(path) });
  // Raw bytes in the path: invalid UTF-8, control characters, a space, a raw CR LF (request splitting).
  cases.push({ label: 'raw invalid UTF-8 in the path', bytes: Buffer.concat([Buffer.from('GET /computeMetadata/v1/\xc3\x28\xa0\xa1 HTTP/1.1\r\n', 'latin1'), Buffer.from(`host: ${host}\r\nmetadata-flavor: Google\r\n\r\n`)]) });
  cases.push({ label: 'raw UTF-8 in the path', bytes: Buffer.from(`GET ${V1}/instance/service-accounts/é@example.com/token HTTP/1.1\r\nhost: ${host}\r\nmetadata-flavor: Google\r\n\r\n`) });
  cases.push({ label: 'a space in the path', bytes: `GET ${V1}/instance /token HTTP/1.1\r\nhost: ${host}\r\n\r\n` });
  cases.push({ label: 'a tab and a NUL in the path', bytes: `GET ${V1}/\t\0 HTTP/1.1\r\nhost: ${host}\r\n\r\n` });
  cases.push({ label: 'CR LF injected into the request line', bytes: `GET ${TOKEN}?scopes=bigquery\r\nSet-Cookie: x=1 HTTP/1.1\r\nhost: ${host}\r\nmetadata-flavor: Google\r\n\r\n` });
  // Query strings.
  const queries = [
    'scopes=',
    'scopes=,,,,',
    'scopes=bigquery&scopes=cloud-platform',
    `scopes=${Array.from({ length: 5000 }, (_, i) => `s${i}`).join(',')}`,
    `scopes=${encodeURIComponent(Array.from({ length: 70 }, (_, i) => `${G}x${i}`).join(' '))}`,
    `scopes=${G}${'a'.repeat(300)}`,
    'scopes=%0d%0aSet-Cookie:%20x=1',
    'scopes=bigquery%00cloud-platform',
    'scopes=%ff%fe',
    'scopes=javascript:alert(1)',
    'scopes=file:///etc/passwd',
    'scopes=http://evil.example/scope',
    'scopes=openid',
    'scopes=../../etc/passwd',
    `${'a=1&'.repeat(2000)}scopes=bigquery`,
    'scopes[]=bigquery',
    'scopes[$ne]=1',
    '__proto__[polluted]=1&scopes=bigquery',
    'constructor[prototype][polluted]=1',
    'format=full&audience=https://example.com',
    'alt=text&recursive=true',
    'recursive=maybe',
    '%',
    '&&&&&',
    '=',
  ];
  for (const query of queries) cases.push({ label: `query ${query.slice(0, 60)}`, bytes: get(`${TOKEN}?${query}`) });
  // Odd account names.
  for (const account of ['a@b', 'ALICE@EXAMPLE.COM', '"<script>"@example.com', 'alice%40example.com', 'default%00', '%00', '..', '.', ' ', 'alice@example.com.', `${'a'.repeat(300)}@example.com`, 'émile@exämple.com', 'alice@example.com%0d%0aX-Injected:%201']) {
    cases.push({ label: `account ${account.slice(0, 40)}`, bytes: get(`${V1}/instance/service-accounts/${account}/token`) });
    cases.push({ label: `account ${account.slice(0, 40)} email`, bytes: get(`${V1}/instance/service-accounts/${account}/email`) });
  }
  // Headers.
  cases.push({ label: 'duplicate Metadata-Flavor', bytes: `GET ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\nmetadata-flavor: Google\r\nmetadata-flavor: Google\r\n\r\n` });
  cases.push({ label: 'Metadata-Flavor in lower case', bytes: get(TOKEN, { 'metadata-flavor': 'google' }) });
  cases.push({ label: 'Metadata-Flavor with spaces', bytes: get(TOKEN, { 'metadata-flavor': ' Google ' }) });
  cases.push({ label: 'duplicate Host', bytes: `GET ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\nhost: evil.example\r\nmetadata-flavor: Google\r\n\r\n` });
  cases.push({ label: 'no Host (HTTP/1.1)', bytes: `GET ${TOKEN} HTTP/1.1\r\nmetadata-flavor: Google\r\n\r\n` });
  cases.push({ label: 'HTTP/1.0 without Host', bytes: `GET ${TOKEN} HTTP/1.0\r\nmetadata-flavor: Google\r\n\r\n` });
  cases.push({ label: 'a header of 20 KiB', bytes: get(TOKEN, { 'x-big': 'a'.repeat(20_480) }), statuses: [431] });
  cases.push({ label: '300 headers', bytes: get(TOKEN, Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`x-h${i}`, 'v']))) });
  cases.push({ label: 'a header without a colon', bytes: `GET ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\nthis is not a header\r\n\r\n` });
  cases.push({ label: 'a header name with spaces', bytes: `GET ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\nmetadata flavor: Google\r\n\r\n` });
  cases.push({ label: 'a header with a NUL', bytes: `GET ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\nmetadata-flavor: Goo\0gle\r\n\r\n` });
  cases.push({ label: 'obsolete header folding', bytes: `GET ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\nmetadata-flavor: Google\r\n x-folded: yes\r\n\r\n` });
  cases.push({ label: 'bare LF line endings', bytes: `GET ${TOKEN} HTTP/1.1\nhost: ${host}\nmetadata-flavor: Google\n\n` });
  cases.push({ label: 'Origin', bytes: get(TOKEN, { origin: 'https://evil.example' }) });
  cases.push({ label: 'Forwarded', bytes: get(TOKEN, { forwarded: 'for=10.0.0.1' }), statuses: [403] });
  cases.push({ label: 'Via', bytes: get(TOKEN, { via: '1.1 proxy' }), statuses: [403] });
  cases.push({ label: 'X-Forwarded-For', bytes: get(TOKEN, { 'x-forwarded-for': '10.0.0.1' }), statuses: [403] });
  cases.push({ label: 'Transfer-Encoding and Content-Length (smuggling)', bytes: `POST ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\nmetadata-flavor: Google\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /tokend/v1/status HTTP/1.1\r\nhost: ${host}\r\n\r\n` });
  cases.push({ label: 'negative Content-Length', bytes: `POST ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\ncontent-length: -1\r\n\r\n` });
  cases.push({ label: 'two Content-Lengths', bytes: `POST ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab` });
  cases.push({ label: 'a Content-Length of 1 TB, half-closed', bytes: `POST ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 1000000000000\r\n\r\nabc`, end: true, answerRequired: false });
  cases.push({ label: 'a bad chunked body', bytes: `POST ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n` });
  cases.push({ label: 'Transfer-Encoding gzip', bytes: `POST ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\ntransfer-encoding: gzip\r\n\r\n` });
  cases.push({ label: 'Expect: 100-continue', bytes: get(TOKEN, { expect: '100-continue' }) });
  cases.push({ label: 'Expect: something else', bytes: get(TOKEN, { expect: 'teapot' }) });
  cases.push({ label: 'Upgrade: websocket', bytes: get(TOKEN, { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' }) });
  cases.push({ label: 'Upgrade: h2c', bytes: get(TOKEN, { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQAAP__' }) });
  // Not HTTP/1.1 at all.
  cases.push({ label: 'the HTTP/2 preface', bytes: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' });
  cases.push({ label: 'HTTP/0.9', bytes: `GET ${TOKEN}\r\n` , end: true, answerRequired: false });
  cases.push({ label: 'HTTP/3.0', bytes: `GET ${TOKEN} HTTP/3.0\r\nhost: ${host}\r\n\r\n` });
  cases.push({ label: 'a TLS ClientHello', bytes: Buffer.from('160301020001000200030300', 'hex') , end: true, answerRequired: false });
  cases.push({ label: 'binary noise', bytes: Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7919) % 256)) });
  cases.push({ label: 'only CR LF', bytes: '\r\n\r\n\r\n\r\n', end: true, answerRequired: false });
  cases.push({ label: 'nothing, half-closed', bytes: '', end: true, answerRequired: false });
  cases.push({ label: 'headers cut off, half-closed', bytes: `GET ${TOKEN} HTTP/1.1\r\nhost: ${host}\r\nmetadata-fla`, end: true, answerRequired: false });
  cases.push({ label: 'a whole request, half-closed', bytes: get(`${TOKEN}?scopes=bigquery`), end: true, statuses: [200] });
  cases.push({ label: 'ten pipelined requests', bytes: Array.from({ length: 10 }, () => get(`${TOKEN}?scopes=bigquery`)).join(''), expect: 10, statuses: [200] });
  cases.push({ label: 'pipelined: a bad request between good ones', bytes: `${get(`${TOKEN}?scopes=bigquery`)}${get(`${TOKEN}?scopes=%ff`)}${get(`${TOKEN}?scopes=bigquery`)}`, expect: 3 });
  return cases;
}

/** Seeded random requests: paths built from the tree's own names and junk, random queries and headers. */
function randomRequest(host: string): fc.Arbitrary<string> {
  const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 });
  const segment = fc.oneof(
    fc.constantFrom('computeMetadata', 'v1', 'instance', 'service-accounts', 'default', 'token', 'email', 'scopes', 'identity', 'project', 'project-id', 'numeric-project-id', 'tokend', 'status', 'logins', '..', '.', '', '%2e%2e', '%2f', '%00', 'alice@example.com'),
    printable.map((s) => encodeURIComponent(s)),
    fc.string({ unit: 'binary', maxLength: 12 }).map((s) => encodeURIComponent(s)),
  );
  const path = fc.array(segment, { maxLength: 9 }).map((segments) => `/${segments.join('/')}`);
  const scopeWord = fc.oneof(fc.constantFrom('bigquery', 'cloud-platform', 'openid', 'email', `${G}bigquery`, `${G}cloud-platform`, '', ' '), printable);
  const value = fc.oneof(fc.array(scopeWord, { maxLength: 6 }).map((words) => words.join(',')), printable, fc.string({ unit: 'binary', maxLength: 20 }));
  const query = fc
    .array(fc.tuple(fc.constantFrom('scopes', 'scopes', 'account', 'format', 'audience', 'alt', 'recursive', 'wait_for_change', 'licenses', '__proto__', 'x'), value), { maxLength: 4 })
    .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')}`));
  const headers = fc.dictionary(
    fc.constantFrom('metadata-flavor', 'origin', 'content-type', 'accept', 'accept-encoding', 'connection', 'x-forwarded-for', 'referer', 'user-agent', 'cookie', 'authorization', 'x-goog-user-project'),
    printable.map((s) => s.trim() || 'x'),
    { maxKeys: 5 },
  );
  const method = fc.constantFrom('GET', 'GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS');
  return fc.tuple(method, path, query, headers, fc.boolean()).map(([m, p, q, h, flavor]) =>
    request(`${p}${q}`, { host, ...(flavor ? { 'metadata-flavor': 'Google' } : {}), ...h, ...(m === 'GET' || m === 'HEAD' || m === 'OPTIONS' ? {} : { 'content-length': '0' }) }, m),
  );
}

async function runCorpus(surface: string, target: Target, host: string): Promise<void> {
  const t = tally(surface);
  for (const each of corpus(host)) {
    const answer = await exchange(target, each.bytes, { ...(each.end ? { end: true } : {}), ...(each.expect ? { expect: each.expect } : {}) });
    judge(t, each.label, answer, { format: 'json', head: each.bytes.toString().startsWith('HEAD '), ...(each.answerRequired === undefined ? {} : { answerRequired: each.answerRequired }), ...(each.statuses ? { statuses: each.statuses } : {}) });
    if (each.expect !== undefined && (each.statuses ?? []).length > 0 && answer.responses.length !== each.expect) t.problems.push(`${each.label}: ${answer.responses.length} answers of ${each.expect}`);
    await assertServes(t, target, host);
  }
  await runFuzz(t, target, host);
  report(t);
}

async function runFuzz(t: Tally, target: Target, host: string): Promise<void> {
  let runs = 0;
  try {
    await fc.assert(
      fc.asyncProperty(randomRequest(host), async (bytes) => {
        const answer = await exchange(target, bytes);
        const problems = judge(t, `random ${bytes.split('\r\n')[0]?.slice(0, 80)}`, answer, { format: 'json', head: bytes.startsWith('HEAD ') });
        if (++runs % 50 === 0) await assertServes(t, target, host);
        return problems.length === 0;
      }),
      { seed, numRuns: FUZZ_RUNS, endOnFailure: true },
    );
  } catch (error) {
    throw new Error(`random requests to the ${t.surface} failed; replay with TOKEND_FUZZ_SEED=${seed}\n${t.problems.join('\n')}\n${(error as Error).message}`);
  }
  await assertServes(t, target, host);
}

describe('bad input over HTTP', () => {
  test('the Unix socket: the corpus and random requests get clear 4xx answers, and the daemon keeps serving', async () => {
    await runCorpus('Unix socket', unix, 'metadata.google.internal');
  });

  test('the metadata listener: the corpus and random requests get clear 4xx answers, and the daemon keeps serving', async () => {
    await runCorpus('metadata listener (TCP)', tcp, `127.0.0.1:${port}`);
  });

  test('the management API: malformed, mistyped and hostile JSON bodies get clear 4xx answers', async () => {
    const t = tally('management API (JSON bodies)');
    const send = (method: string, path: string, body: string | Buffer, contentType = 'application/json') =>
      Buffer.concat([
        Buffer.from(`${method} ${path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`),
        Buffer.from(body),
      ]);
    const web = JSON.stringify({ web: { client_id: 'x.apps.googleusercontent.com', client_secret: 's', auth_uri: 'https://accounts.google.com/o/oauth2/auth', token_uri: 'https://oauth2.googleapis.com/token' } });
    const installed = (fields: Record<string, unknown>) =>
      JSON.stringify({ installed: { client_id: 'x.apps.googleusercontent.com', client_secret: 's', auth_uri: 'https://accounts.google.com/o/oauth2/auth', token_uri: 'https://oauth2.googleapis.com/token', ...fields } });
    const loginBodies = [
      '',
      'null',
      '[]',
      '"clientSecrets"',
      '12',
      '{',
      '{"clientSecrets": }',
      '{"clientSecrets": 5}',
      '{"clientSecrets": ""}',
      '{"clientSecrets": "not json"}',
      '{"clientSecrets": "[]"}',
      JSON.stringify({ clientSecrets: web }),
      JSON.stringify({ clientSecrets: installed({ client_id: undefined }) }),
      JSON.stringify({ clientSecrets: installed({ client_secret: 7 }) }),
      JSON.stringify({ clientSecrets: installed({ token_uri: 'not a url' }) }),
      JSON.stringify({ clientSecrets: installed({ token_uri: 'http://evil.example/token' }) }),
      JSON.stringify({ clientSecrets: installed({ token_uri: 'file:///etc/passwd' }) }),
      JSON.stringify({ clientSecrets: installed({ auth_uri: 'javascript:alert(1)' }) }),
      JSON.stringify({ clientSecrets: installed({}), scopes: 12 }),
      JSON.stringify({ clientSecrets: installed({}), scopes: 'x'.repeat(40_000) }),
      JSON.stringify({ clientSecrets: installed({}), scopes: Array.from({ length: 100 }, (_, i) => `s${i}`).join(',') }),
      JSON.stringify({ clientSecrets: installed({}), loginHint: { $ne: 1 } }),
      '{"__proto__": {"polluted": true}, "clientSecrets": "x"}',
      '{"constructor": {"prototype": {"polluted": true}}}',
      `{"clientSecrets": "${'a'.repeat(70_000)}"}`,
      '['.repeat(100_000),
      Buffer.from('{"clientSecrets": "\xff\xfe"}', 'latin1'),
    ];
    const cases: Array<[string, Buffer]> = [
      ...loginBodies.map((body, i): [string, Buffer] => [`POST /logins body ${i}`, send('POST', '/tokend/v1/logins', body)]),
      ['POST /logins as text/plain', send('POST', '/tokend/v1/logins', installed({}), 'text/plain')],
      ['POST /logins as UTF-16 JSON', send('POST', '/tokend/v1/logins', Buffer.from(JSON.stringify({ clientSecrets: installed({}) }), 'utf16le'), 'application/json; charset=utf-16')],
      ['POST /logins as a form', send('POST', '/tokend/v1/logins', 'clientSecrets=x', 'application/x-www-form-urlencoded')],
      ...['nope', '../../etc', 'x'.repeat(3000), '%00', '%2e%2e%2f'].flatMap((id): Array<[string, Buffer]> => [
        [`GET /logins/${id.slice(0, 20)}`, send('GET', `/tokend/v1/logins/${id}?wait=0`, '')],
        [`POST /logins/${id.slice(0, 20)}/redirect`, send('POST', `/tokend/v1/logins/${id}/redirect`, JSON.stringify({ url: 'http://127.0.0.1:1/oauth2callback?code=x&state=y' }))],
      ]),
      ['GET /logins/x?wait=-5', send('GET', '/tokend/v1/logins/x?wait=-5', '')],
      ['GET /logins/x?wait=1e308', send('GET', '/tokend/v1/logins/x?wait=1e308', '')],
      ['PUT /default {}', send('PUT', '/tokend/v1/default', '{}')],
      ['PUT /default account 5', send('PUT', '/tokend/v1/default', '{"account": 5}')],
      ['PUT /default account []', send('PUT', '/tokend/v1/default', '{"account": []}')],
      ['PUT /default unknown account', send('PUT', '/tokend/v1/default', '{"account": "nobody@example.com"}')],
      ['PUT /default a long account', send('PUT', '/tokend/v1/default', JSON.stringify({ account: `${'a'.repeat(5000)}@example.com` }))],
      ['POST /store/migrate nowhere', send('POST', '/tokend/v1/store/migrate', '{"to": "nowhere"}')],
      ['POST /store/migrate 5', send('POST', '/tokend/v1/store/migrate', '{"to": 5}')],
      ['POST /store/migrate a path', send('POST', '/tokend/v1/store/migrate', '{"to": "../../tmp/x"}')],
      ['POST /logout unknown account', send('POST', '/tokend/v1/logout', '{"account": "nobody@example.com"}')],
      ['POST /logout revoke "yes"', send('POST', '/tokend/v1/logout', '{"account": "nobody@example.com", "revoke": "yes"}')],
      ['POST /logout account {}', send('POST', '/tokend/v1/logout', '{"account": {}}')],
      ['GET /token account twice', send('GET', '/tokend/v1/token?account=a&account=b', '')],
      ['GET /token unknown account', send('GET', '/tokend/v1/token?account=nobody%40example.com', '')],
      ['GET /token scopes junk', send('GET', '/tokend/v1/token?scopes=%00%01%02', '')],
      ['DELETE /status', send('DELETE', '/tokend/v1/status', '')],
      ['POST /status', send('POST', '/tokend/v1/status', '{}')],
    ];
    for (const [label, bytes] of cases) {
      const answer = await exchange(unix, bytes);
      const problems = judge(t, label, answer, { format: 'json' });
      const status = answer.responses[0]?.status ?? 0;
      if (problems.length === 0 && !label.startsWith('DELETE /logins') && (status < 400 || status >= 500)) t.problems.push(`${label}: HTTP ${status}, a bad request was not refused`);
      await assertServes(t, unix, 'localhost');
    }
    const status = await exchange(unix, request('/tokend/v1/status', { host: 'localhost' }));
    assert.match(status.responses[0]?.body ?? '', /alice@example\.com/, 'the account is still there');
    assert.doesNotMatch(status.responses[0]?.body ?? '', /polluted/);
    report(t);
  });

  test('the consent listener and its callback: junk, forged and replayed redirects leave the sign-in open; the real one completes it once', async () => {
    const t = tally('consent listener');
    const login = startCli(['login', '--client-secrets', clientFile, '--scopes', 'bigquery', '--no-browser'], env);
    const [, authUrl] = await login.waitForStderr(AUTH_URL_LINE);
    const redirectUri = new URL(new URL(authUrl!).searchParams.get('redirect_uri')!);
    const consent: Target = { port: Number(redirectUri.port) };
    const host = `127.0.0.1:${redirectUri.port}`;
    const real = new URL(await obtainRedirectUrl(authUrl!));
    const code = real.searchParams.get('code')!;
    const state = real.searchParams.get('state')!;
    const callback = (query: string, headers: Record<string, string> = {}) => request(`${CALLBACK_PATH}?${query}`, { host, ...headers });
    standin.resetStats();
    const cases: Array<[string, string | Buffer, number[]]> = [
      ['no query', callback(''), [400]],
      ['no code', callback(`state=${state}`), [400]],
      ['an empty code', callback(`code=&state=${state}`), [400]],
      ['a code of 3000 characters', callback(`code=${'a'.repeat(3000)}&state=${state}`), [400]],
      ['the real code with a wrong state', callback(`code=${code}&state=${state.slice(1)}x`), [400]],
      ['the real code with no state', callback(`code=${code}`), [400]],
      ['the real code with the state twice', callback(`code=${code}&state=${state}&state=${state}`), [400]],
      ['the real code and a forged one', callback(`code=forged&code=${code}&state=${state}`), [400]],
      ['error=access_denied with a wrong state', callback(`error=access_denied&state=wrong`), [400]],
      ['error=<script> with a wrong state', callback(`error=%3Cscript%3E&state=wrong`), [400]],
      ['a forged code with the right state', callback(`code=forged-code&state=${state}`), [403]],
      ['the real code, asked for by an <img>', callback(`code=${code}&state=${state}`, { 'sec-fetch-dest': 'image' }), [403]],
      ['the real code, POSTed', request(`${CALLBACK_PATH}?code=${code}&state=${state}`, { host, 'content-length': '0' }, 'POST'), [404]],
      ['another path', request('/../../etc/passwd', { host }), [404]],
      ['a start address that is not the one', request('/start/guess', { host }), [404]],
      ['not HTTP', 'hello\r\n\r\n', [400]],
      ['CONNECT', `CONNECT 127.0.0.1:443 HTTP/1.1\r\nhost: ${host}\r\n\r\n`, [405]],
      ['no Host', `GET ${CALLBACK_PATH}?state=x HTTP/1.1\r\n\r\n`, [400]],
      ['an unknown Expect', callback(`state=x`, { expect: 'teapot' }), [417]],
      ['a header of 20 KiB', callback(`code=${code}&state=${state}`, { 'x-big': 'a'.repeat(20_480) }), [431]],
      ['invalid UTF-8 in the query', Buffer.concat([Buffer.from(`GET ${CALLBACK_PATH}?code=\xc3\x28&state=${state} HTTP/1.1\r\n`, 'latin1'), Buffer.from(`host: ${host}\r\n\r\n`)]), [400]],
    ];
    for (const [label, bytes, statuses] of cases) {
      judge(t, label, await exchange(consent, bytes), { format: 'page', statuses });
      assert.equal(login.child.exitCode, null, `the sign-in is still open after: ${label}`);
    }
    assert.equal(standin.stats.codeGrants, 1, 'only the forged code was sent to the OAuth server; the real one was never spent by a bad request');
    const completed = await exchange(consent, callback(`code=${code}&state=${state}`));
    assert.equal(completed.responses[0]?.status, 200, completed.responses[0]?.body);
    const result = await login.result;
    assert.equal(result.code, 0, result.stderr);
    // A replay: the listener is gone, or refuses it; the OAuth server is not asked again.
    const replay = await exchange(consent, callback(`code=${code}&state=${state}`), { timeoutMs: 1500 });
    judge(t, 'the real redirect replayed', replay, { format: 'page', answerRequired: false, statuses: [409] });
    assert.equal(standin.stats.codeGrants, 2, 'the replay never reached the OAuth server');
    report(t);
  });

  test('slow-loris and half-open connections do not stop a normal client from being served', async () => {
    const t = tally('slow-loris on both listeners');
    for (const target of [unix, tcp]) {
      const host = target === unix ? 'metadata.google.internal' : `127.0.0.1:${port}`;
      const slow = Array.from({ length: 40 }, () => open(target));
      const text = request(TOKEN, { host });
      let sent = 0;
      const drip = setInterval(() => {
        for (const socket of slow) if (!socket.destroyed) socket.write(text[sent % text.length]!);
        sent++;
      }, 50);
      try {
        await new Promise((resolve) => setTimeout(resolve, 300));
        for (let i = 0; i < 5; i++) await assertServes(t, target, host);
      } finally {
        clearInterval(drip);
        for (const socket of slow) socket.destroy();
      }
    }
    t.cases += 2 * 40; // the slow connections held, 40 on each listener
    report(t);
  });
});
