/**
 * Runs after every other suite (scripts/run-tests.js). The stand-in recorded every secret it issued or
 * saw — access and refresh tokens, codes, ID tokens, PKCE verifiers, client secrets — and the helpers
 * the file passphrases the daemons were given; every daemon left its log and every CLI its stderr.
 * Not one of those secrets may appear in any of them.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const artifacts = process.env.TOKEND_TEST_ARTIFACTS;
const skip =
  artifacts === undefined
    ? process.env.CI === 'true'
      ? false
      : 'run through `npm test`: this suite reads what the other suites leave in TOKEND_TEST_ARTIFACTS'
    : false;

function readAll(dir: string): Array<{ name: string; text: string }> {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((name) => ({ name, text: readFileSync(join(dir, name), 'utf8') }));
}

test('no log line of the whole suite contains a token, code, verifier or client secret', { skip }, () => {
  assert.ok(artifacts !== undefined, 'TOKEND_TEST_ARTIFACTS must be set (run `npm test`)');
  const secrets = new Set(
    readAll(join(artifacts, 'secrets'))
      .flatMap((file) => file.text.split('\n'))
      .map((line) => line.trim())
      .filter((line) => line.length >= 16),
  );
  const logs = readAll(join(artifacts, 'logs'));
  assert.ok(secrets.size >= 50, `only ${secrets.size} secrets were recorded: the other suites did not run`);
  assert.ok(logs.length >= 5, `only ${logs.length} daemon logs were captured`);
  const lines = logs.flatMap((log) => log.text.split('\n').map((line, i) => ({ where: `${log.name}:${i + 1}`, line })));
  assert.ok(lines.some(({ line }) => line.includes('"event":"token_issued"')), 'the logs hold no audit lines: nothing was captured');
  const leaks: string[] = [];
  for (const { where, line } of lines) {
    for (const secret of secrets) {
      if (line.includes(secret)) leaks.push(`${where} contains a secret starting ${secret.slice(0, 6)}…`);
    }
  }
  assert.deepEqual(leaks, []);
});
