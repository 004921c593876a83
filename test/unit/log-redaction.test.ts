/**
 * Each layer that keeps secrets out of logs, on its own: pino's redaction of secret field names, the
 * Secret wrapper, and the error serializer. (test/final/ then searches every log the suite wrote.)
 */
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, test } from 'node:test';
import { UpstreamUnavailableError } from '../../src/errors.js';
import { prettyLine } from '../../src/log-pretty.js';
import { createLogger, SECRET_KEYS, serializeError } from '../../src/log.js';
import { Secret } from '../../src/secret.js';

const SECRET = 'ya29.SECRET-VALUE-THAT-MUST-NOT-BE-LOGGED';

function capture() {
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(line) } });
  return { logger, text: () => lines.join('') };
}

describe('log redaction', () => {
  test('a secret under every field name of the list, at the top level and nested twice, prints as [Redacted]', () => {
    for (const key of SECRET_KEYS) {
      const { logger, text } = capture();
      logger.info({ [key]: SECRET }, 'top');
      logger.info({ outer: { [key]: SECRET } }, 'nested');
      logger.info({ outer: { inner: { [key]: SECRET } } }, 'nested twice');
      assert.ok(!text().includes(SECRET), `the value under "${key}" leaked: ${text()}`);
      assert.equal(text().match(/\[Redacted\]/g)?.length, 3, `"${key}" was not redacted at every depth`);
    }
  });

  test('the pretty format prints what pino serialized: redacted values stay redacted', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(prettyLine(line)) } });
    logger.info({ event: 'x', refresh_token: SECRET, nested: { access_token: SECRET }, held: new Secret(SECRET) }, 'a line with secrets');
    assert.equal(lines.length, 1);
    assert.ok(!lines[0]!.includes(SECRET), lines[0]);
    assert.match(lines[0]!, /^\S+Z INFO {2}a line with secrets {2}event=x refresh_token=\[Redacted\] nested=\{"access_token":"\[Redacted\]"\} held=\[Redacted\]\n$/);
  });

  test('Secret prints as [Redacted] through JSON, inspect, templates, String() and as a logged error cause', () => {
    const secret = new Secret(SECRET);
    const forms = [JSON.stringify({ secret }), inspect({ secret }, { depth: 5 }), `${String(secret)}`, `x${secret as unknown as string}`];
    for (const form of forms) assert.ok(!form.includes(SECRET) && form.includes('[Redacted]'), form);
    const { logger, text } = capture();
    logger.info({ held: secret, list: [secret] }, 'with a Secret');
    logger.error({ err: new Error('outer', { cause: secret }) }, 'with a cause');
    assert.ok(!text().includes(SECRET), text());
    assert.equal(secret.reveal(), SECRET);
  });

  test('a foreign error is logged by class and code only: its message may carry a response body', () => {
    const foreign = Object.assign(new Error(`request failed: {"access_token":"${SECRET}"}`), { code: 'ERR_BAD_RESPONSE' });
    assert.deepEqual(serializeError(foreign), { type: 'Error', code: 'ERR_BAD_RESPONSE' });
    const { logger, text } = capture();
    logger.error({ err: foreign, error: foreign }, 'a library failed');
    assert.ok(!text().includes(SECRET), text());
    // tokend's own messages are written to be safe, and kept.
    assert.deepEqual(serializeError(new UpstreamUnavailableError('the OAuth server could not be reached', { hint: 'try again' })), {
      type: 'UpstreamUnavailableError',
      code: 'upstream_unavailable',
      message: 'the OAuth server could not be reached',
    });
  });
});
