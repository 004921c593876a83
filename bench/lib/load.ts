/**
 * A closed-loop HTTP/1.1 load generator on raw sockets: each client sends one request, reads the whole
 * answer, and sends the next (on the same connection with keep-alive, on a new one without). It parses
 * no more than the status line and Content-Length, so that its own cost stays small next to the
 * server's, and it is the same client for tokend and for every baseline.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export type Target = { path: string } | { host: string; port: number };

export interface LoadOptions {
  target: Target;
  /** The request line and headers, e.g. `GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n`. */
  request: string;
  clients: number;
  durationMs: number;
  /** false: one connection per request (what `Connection: close` clients do). */
  keepAlive: boolean;
}

export interface LoadResult {
  requests: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers other than 200, and connection errors: any is a failed run. */
  failures: string[];
}

const HEADER_END = Buffer.from('\r\n\r\n');
const ANSWER_TIMEOUT_MS = 10_000;

/** Bytes of one answer in `buffer` (headers and body), or undefined while it is incomplete. */
function answerLength(buffer: Buffer): { length: number; status: number } | undefined {
  const end = buffer.indexOf(HEADER_END);
  if (end < 0) return undefined;
  const head = buffer.toString('latin1', 0, end);
  const match = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (match === null) throw new Error(`an answer without Content-Length: ${head.slice(0, 200)}`);
  const length = end + 4 + Number(match[1]);
  return buffer.length >= length ? { length, status: Number(head.slice(9, 12)) } : undefined;
}

export function percentile(sorted: ArrayLike<number>, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const request = Buffer.from(options.request);
  const latencies: number[] = [];
  const failures: string[] = [];
  const deadline = performance.now() + options.durationMs;
  const started = performance.now();

  const client = () =>
    new Promise<void>((resolve) => {
      let socket: Socket;
      let pending: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      const open = () => {
        socket = connect(options.target as { path: string });
        socket.setNoDelay(true);
        // A server that stops answering ends the run with a failure instead of hanging it.
        socket.setTimeout(ANSWER_TIMEOUT_MS, () => {
          if (failures.length < 10) failures.push(`no answer within ${ANSWER_TIMEOUT_MS} ms`);
          finish();
        });
        sentAt = performance.now();
        socket.write(request);
        socket.on('data', onData);
        socket.on('error', (error) => {
          if (failures.length < 10) failures.push(error.message);
          finish();
        });
      };
      const finish = () => {
        socket.destroy();
        resolve();
      };
      const onData = (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        let answer;
        try {
          answer = answerLength(pending);
        } catch (error) {
          failures.push((error as Error).message);
          return finish();
        }
        if (answer === undefined) return;
        const now = performance.now();
        latencies.push(now - sentAt);
        if (answer.status !== 200 && failures.length < 10) failures.push(`status ${answer.status}: ${pending.toString('latin1', 0, 300)}`);
        pending = pending.subarray(answer.length);
        if (now >= deadline) return finish();
        if (options.keepAlive) {
          sentAt = performance.now();
          socket.write(request);
        } else {
          socket.removeAllListeners();
          socket.on('error', () => {});
          socket.destroy();
          pending = Buffer.alloc(0);
          open();
        }
      };
      open();
    });

  await Promise.all(Array.from({ length: options.clients }, client));
  const seconds = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return { requests: latencies.length, perSecond: latencies.length / seconds, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), failures };
}
