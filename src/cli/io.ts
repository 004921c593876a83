import type { Readable, Writable } from 'node:stream';

/** Where a command reads and writes; tests pass their own. stdout carries data only. */
export interface Io {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  env: Readonly<Record<string, string | undefined>>;
}

export function processIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

export function line(stream: Writable, text = ''): void {
  stream.write(`${text}\n`);
}
