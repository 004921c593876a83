import type { Readable, Writable } from 'node:stream';

/** Where a command reads and writes; tests pass their own. stdout carries data only. */
export interface Io {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  env: Readonly<Record<string, string | undefined>>;
}

/**
 * The process's own streams, each made when first used: node builds a stream for a pipe, a terminal
 * or a file when it is first touched (2–4 ms for the first), and most commands never read stdin.
 */
export function processIo(): Io {
  return {
    get stdout() {
      return process.stdout;
    },
    get stderr() {
      return process.stderr;
    },
    get stdin() {
      return process.stdin;
    },
    env: process.env,
  };
}

export function line(stream: Writable, text = ''): void {
  stream.write(`${text}\n`);
}
