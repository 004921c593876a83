// Keeps docs/errors.md and the error catalogue (src/errors.ts) in step: one `## \`code\`` section per
// class in `errorClasses`, in the same order, each naming the class's HTTP status and CLI exit code.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import { errorClasses, ExitCode } from '../../src/errors.js';

const DOC = 'docs/errors.md';
const docText = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

interface Section {
  code: string;
  line: number;
  body: string;
}

/** Every `## ` heading that starts with a backtick is a code section; it must be exactly `## \`code\``. */
function codeSections(text: string): { sections: Section[]; malformed: string[] } {
  const lines = text.split('\n');
  const sections: Section[] = [];
  const malformed: string[] = [];
  let current: { code: string; line: number; body: string[] } | undefined;
  const close = () => {
    if (current !== undefined) sections.push({ code: current.code, line: current.line, body: current.body.join('\n') });
    current = undefined;
  };
  let inFence = false;
  lines.forEach((line, index) => {
    if (/^(```|~~~)/.test(line)) inFence = !inFence;
    if (!inFence && /^#{1,2} /.test(line)) {
      close();
      if (!line.startsWith('## `')) return;
      const match = /^## `([a-z0-9_]+)`$/.exec(line);
      if (match === null) {
        malformed.push(`line ${index + 1}: ${line}`);
        return;
      }
      current = { code: match[1]!, line: index + 1, body: [] };
      return;
    }
    current?.body.push(line);
  });
  close();
  return { sections, malformed };
}

const catalogue = errorClasses.map((Cls) => {
  const instance = new Cls('errors-doc test', { hint: 'errors-doc hint' });
  return { name: Cls.name, code: Cls.code, instance };
});
const exitNames = new Map<number, string>(Object.entries(ExitCode).map(([name, value]) => [value, name]));
const { sections, malformed } = codeSections(docText);

describe(`${DOC} and src/errors.ts`, () => {
  test('every class in errorClasses has a unique code, the same on the class and its instances', () => {
    const seen = new Map<string, string>();
    const duplicates: string[] = [];
    for (const { name, code, instance } of catalogue) {
      assert.equal(instance.code, code, `${name}: instance code "${instance.code}" differs from static code "${code}"`);
      const earlier = seen.get(code);
      if (earlier !== undefined) duplicates.push(`"${code}" (${earlier} and ${name})`);
      seen.set(code, name);
    }
    assert.deepEqual(duplicates, [], `error codes used by more than one class: ${duplicates.join(', ')}`);
  });

  test('code headings are well-formed and not repeated', () => {
    assert.deepEqual(malformed, [], `${DOC}: headings must read exactly ## \`code\`:\n${malformed.join('\n')}`);
    const counts = new Map<string, number>();
    for (const { code } of sections) counts.set(code, (counts.get(code) ?? 0) + 1);
    const repeated = [...counts].filter(([, n]) => n > 1).map(([code, n]) => `${code} (${n} times)`);
    assert.deepEqual(repeated, [], `${DOC} has repeated sections: ${repeated.join(', ')}`);
  });

  test('the set of ## `code` headings equals the set of codes in errorClasses', () => {
    const documented = new Set(sections.map((s) => s.code));
    const defined = new Set(catalogue.map((c) => c.code));
    const missing = catalogue.filter((c) => !documented.has(c.code)).map((c) => `${c.code} (${c.name})`);
    const extra = sections.filter((s) => !defined.has(s.code)).map((s) => `${s.code} (line ${s.line})`);
    const problems = [
      ...(missing.length > 0 ? [`missing from ${DOC}: ${missing.join(', ')}`] : []),
      ...(extra.length > 0 ? [`in ${DOC} but not in errorClasses: ${extra.join(', ')}`] : []),
    ];
    assert.deepEqual(problems, [], problems.join('; '));
  });

  test('the sections come in the order of errorClasses', () => {
    const defined = new Set(catalogue.map((c) => c.code));
    const documentedOrder = sections.map((s) => s.code).filter((code) => defined.has(code));
    const expectedOrder = catalogue.map((c) => c.code).filter((code) => documentedOrder.includes(code));
    const at = documentedOrder.findIndex((code, i) => code !== expectedOrder[i]);
    assert.deepEqual(
      documentedOrder,
      expectedOrder,
      `${DOC}: sections must follow the order of errorClasses; section ${at + 1} is ${documentedOrder[at]}, expected ${expectedOrder[at]}`,
    );
  });

  test('each section states the HTTP status and the CLI exit code (number and name)', () => {
    const byCode = new Map(sections.map((s) => [s.code, s]));
    const problems: string[] = [];
    for (const { code, instance } of catalogue) {
      const section = byCode.get(code);
      if (section === undefined) continue; // reported by the set test
      const status = /HTTP status:\**\s*\**(\d{3})\b/.exec(section.body)?.[1];
      if (status !== String(instance.httpStatus)) {
        problems.push(`${code} (line ${section.line}): "HTTP status: ${instance.httpStatus}" expected, found ${status ?? 'none'}`);
      }
      const exitName = exitNames.get(instance.exitCode) ?? '?';
      const exit = /exit code:\**\s*\**(\d+)\b/.exec(section.body)?.[1];
      if (exit !== String(instance.exitCode)) {
        problems.push(`${code} (line ${section.line}): "exit code: ${instance.exitCode}" expected, found ${exit ?? 'none'}`);
      }
      if (!section.body.includes(`\`${exitName}\``)) {
        problems.push(`${code} (line ${section.line}): the exit code's name \`${exitName}\` is not mentioned`);
      }
    }
    assert.deepEqual(problems, [], `${DOC}:\n${problems.join('\n')}`);
  });

  test('the exit code table lists every ExitCode with its name', () => {
    const missing = Object.entries(ExitCode)
      .filter(([name, value]) => !new RegExp(`^\\|\\s*${value}\\s*\\|\\s*\`${name}\`\\s*\\|`, 'm').test(docText))
      .map(([name, value]) => `${value} (${name})`);
    assert.deepEqual(missing, [], `${DOC}: the exit code table lacks rows "| n | \`name\` |" for ${missing.join(', ')}`);
  });
});
