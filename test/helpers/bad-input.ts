/**
 * How the bad-input suites judge an answer: a clear 4xx (or a normal answer) in tokend's error format,
 * never a 5xx without cause, never a glimpse of internals, and a daemon that is still there.
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { artifactLogPath } from './daemon-process.js';
import type { RawAnswer } from './raw-http.js';
import { recordFigure } from './figures.js';

/** What an answer must never show: stack frames, paths of the code, library error codes. */
const INTERNALS = /node_modules|\/work\/|\/src\/|\/dist\/|\.[jt]s:\d+|\bat [\w.<>]+ \(|TypeError|RangeError|SyntaxError|ReferenceError|FST_[A-Z_]+|HPE_[A-Z_]+|ERR_[A-Z_]{4,}|"stack"/;

export interface Tally {
  surface: string;
  cases: number;
  crashes: number;
  unexplained5xx: number;
  leaks: number;
  problems: string[];
}

export function tally(surface: string): Tally {
  return { surface, cases: 0, crashes: 0, unexplained5xx: 0, leaks: 0, problems: [] };
}

export interface Expectation {
  /** `json`: tokend's error body on every 4xx/5xx; `page`: an HTML or text page (the consent listener). */
  format: 'json' | 'page';
  /** False where the request is incomplete on purpose, so that closing without a word is right. */
  answerRequired?: boolean;
  /** Statuses this case may get, when narrower than "anything below 500". */
  statuses?: number[];
  /** The request was a HEAD: answers have no body to judge. */
  head?: boolean;
}

const answerFiles: { tokens?: string; others?: string } = {};

/**
 * Every answer is kept for test/final's search for secrets; a token's in a file of its own, where an
 * access token may appear (and nothing else secret).
 */
function keepAnswer(body: string): void {
  if (process.env.TOKEND_TEST_ARTIFACTS === undefined) return;
  const file = body.includes('"access_token"')
    ? (answerFiles.tokens ??= artifactLogPath('http-token-answers', 'outputs'))
    : (answerFiles.others ??= artifactLogPath('http-answers', 'outputs'));
  appendFileSync(file, `${body}\n`);
}

/** Judges one case's answer; returns what was wrong with it (also kept in the tally). */
export function judge(t: Tally, label: string, answer: RawAnswer, expectation: Expectation): string[] {
  t.cases++;
  const problems: string[] = [];
  for (const response of answer.responses) keepAnswer(response.body);
  if (answer.responses.length === 0 && (expectation.answerRequired ?? true)) problems.push('no answer');
  for (const response of answer.responses) {
    const { status, body, headers } = response;
    if (status >= 500 && !explained5xx(body)) {
      t.unexplained5xx++;
      problems.push(`HTTP ${status}`);
    }
    if (expectation.statuses !== undefined && !expectation.statuses.includes(status)) problems.push(`HTTP ${status}, expected ${expectation.statuses.join(' or ')}`);
    if (INTERNALS.test(body) || INTERNALS.test(JSON.stringify(headers))) {
      t.leaks++;
      problems.push(`internals in the answer: ${body.slice(0, 200)}`);
    }
    if (expectation.format === 'json' && status >= 400 && !(expectation.head ?? false) && !isErrorBody(body)) problems.push(`not tokend's error format: ${body.slice(0, 200)}`);
  }
  for (const problem of problems) t.problems.push(`${label}: ${problem}`);
  return problems;
}

function explained5xx(body: string): boolean {
  try {
    const code = (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? '';
    return code.startsWith('upstream_') || code.startsWith('store_');
  } catch {
    return false;
  }
}

function isErrorBody(body: string): boolean {
  try {
    const error = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown; hint?: unknown } }).error;
    return typeof error?.code === 'string' && typeof error.message === 'string' && error.message.length > 0;
  } catch {
    return false;
  }
}

/** Fails with every problem found, and records the surface's figures either way. */
export function report(t: Tally): void {
  recordFigure({ kind: 'bad-input', surface: t.surface, cases: t.cases, crashes: t.crashes, unexplained5xx: t.unexplained5xx, leaks: t.leaks });
  assert.deepEqual(t.problems.slice(0, 20), [], `${t.problems.length} problems on ${t.surface}`);
}

/** The fuzzing seed: TOKEND_FUZZ_SEED to replay a failure, else a new one each run (printed when it fails). */
export function fuzzSeed(): number {
  const given = process.env.TOKEND_FUZZ_SEED;
  return given !== undefined && given !== '' ? Number(given) : Math.floor(Math.random() * 2 ** 31);
}
