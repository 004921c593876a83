/**
 * Runs after every other suite (scripts/run-tests.js). The stand-in recorded every secret it issued or
 * saw — access and refresh tokens, codes, ID tokens, PKCE verifiers, client secrets — and the helpers
 * the file passphrases the daemons were given. Every daemon left its log, every CLI its stderr and its
 * stdout (status, doctor, env, a child's environment under exec), and the bad-input suites every error
 * body they got. Not one refresh token, code, verifier, ID token, client secret or passphrase may
 * appear in any of those bytes; an access token only where it is handed out (`tokend token`, `exec`).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { recordFigure } from '../helpers/figures.js';

const artifacts = process.env.TOKEND_TEST_ARTIFACTS;
const skip =
  artifacts === undefined
    ? process.env.CI === 'true'
      ? false
      : 'run through `npm test`: this suite reads what the other suites leave in TOKEND_TEST_ARTIFACTS'
    : false;

function readAll(dir: string): Array<{ name: string; text: string }> {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((name) => ({ name, text: readFileSync(join(dir, name), 'latin1') }));
}

function secretsIn(files: Array<{ text: string }>): Set<string> {
  return new Set(
    files
      .flatMap((file) => file.text.split('\n'))
      .map((line) => line.trim())
      .filter((line) => line.length >= 16),
  );
}

/** The characters of opaque tokens, codes, verifiers, JWTs and client secrets. */
const TOKEN_RUN = /[A-Za-z0-9_.~-]{16,}/g;
const PREFIX = 16;

/**
 * Where each secret appears, as `file:line`. Hundreds of megabytes (the soak's audit trail) against
 * hundreds of secrets: each file is scanned once for runs of token characters, and every position in
 * a run is looked up by its first 16 characters; a secret with other characters (a passphrase) is
 * searched for as it is.
 */
function search(files: Array<{ name: string; text: string }>, secrets: Set<string>): string[] {
  const byPrefix = new Map<string, string[]>();
  const odd: string[] = [];
  for (const secret of secrets) {
    if (!/^[A-Za-z0-9_.~-]+$/.test(secret)) {
      odd.push(secret);
      continue;
    }
    const prefix = secret.slice(0, PREFIX);
    byPrefix.set(prefix, [...(byPrefix.get(prefix) ?? []), secret]);
  }
  const hits: string[] = [];
  const report = (file: { name: string; text: string }, secret: string) => {
    const at = file.text.indexOf(secret);
    const line = file.text.slice(0, at).split('\n').length;
    hits.push(`${file.name}:${line} contains a secret starting ${secret.slice(0, 6)}…`);
  };
  for (const file of files) {
    const found = new Set<string>();
    for (const [run] of file.text.matchAll(TOKEN_RUN)) {
      for (let i = 0; i + PREFIX <= run.length; i++) {
        for (const secret of byPrefix.get(run.slice(i, i + PREFIX)) ?? []) if (run.startsWith(secret, i)) found.add(secret);
      }
    }
    for (const secret of odd) if (file.text.includes(secret)) found.add(secret);
    for (const secret of found) report(file, secret);
  }
  return hits;
}

/** Outputs that hand an access token out by design. */
const HANDS_OUT_TOKENS = /^(cli-(token|exec)|http-token-answers)-/;

test('no byte the whole suite captured holds a refresh token, code, verifier, ID token, client secret or passphrase; access tokens only where handed out', { skip }, () => {
  assert.ok(artifacts !== undefined, 'TOKEND_TEST_ARTIFACTS must be set (run `npm test`)');
  const recorded = readAll(join(artifacts, 'secrets'));
  const accessTokens = secretsIn(recorded.filter((file) => file.name.startsWith('access-')));
  const secrets = secretsIn(recorded.filter((file) => !file.name.startsWith('access-')));
  const logs = readAll(join(artifacts, 'logs'));
  const outputs = readAll(join(artifacts, 'outputs'));
  assert.ok(secrets.size >= 50, `only ${secrets.size} secrets were recorded: the other suites did not run`);
  assert.ok(accessTokens.size >= 50, `only ${accessTokens.size} access tokens were recorded`);
  assert.ok(logs.length >= 5, `only ${logs.length} daemon logs were captured`);
  assert.ok(outputs.some((file) => file.name.startsWith('http-answers-')), 'the bad-input suites\' answers were captured');
  assert.ok(outputs.some((file) => file.name.startsWith('cli-status-')), 'status output was captured');
  assert.ok(logs.some((file) => file.text.includes('"event":"token_issued"')), 'the logs hold no audit lines: nothing was captured');
  // A control: the search finds a secret embedded in other token characters, and a passphrase.
  const [sample] = [...secrets].filter((secret) => /^[A-Za-z0-9_.~-]+$/.test(secret));
  const control = [{ name: 'control', text: `{"x":"ab${sample}cd"}\npassphrase correct horse battery staple.` }];
  assert.equal(search(control, new Set([sample!, 'correct horse battery staple'])).length, 2, 'the search finds what is planted');
  const everything = [...logs, ...outputs];
  const hits = [
    ...search(everything, secrets),
    ...search([...logs, ...outputs.filter((file) => !HANDS_OUT_TOKENS.test(file.name))], accessTokens),
  ];
  recordFigure({
    kind: 'secret-search',
    name: 'every log, CLI output and error body of the suite',
    secrets: secrets.size + accessTokens.size,
    files: everything.length,
    bytes: everything.reduce((n, file) => n + file.text.length, 0),
    hits: hits.length,
  });
  assert.deepEqual(hits.slice(0, 20), [], `${hits.length} secrets found`);
});
