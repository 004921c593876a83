/** A baseline server in its own process (plain .js, no loader), answering what tokend answers. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import type { Target } from './load.js';

export interface AnswerShape {
  headers: Record<string, string>;
  body: string;
}

export interface Baseline {
  child: ChildProcess;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set(['date', 'connection', 'keep-alive']);

/** The headers and body of one real answer, for a baseline to copy (Date and connection headers are the server's own). */
export async function captureAnswer(target: Target, request: string): Promise<AnswerShape> {
  const socket = connect(target as { path: string });
  socket.write(request.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'end');
  const text = Buffer.concat(chunks).toString('latin1');
  const [head = '', body = ''] = text.split('\r\n\r\n');
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    if (!HOP_BY_HOP.has(name)) headers[name] = line.slice(colon + 1).trim();
  }
  return { headers, body };
}

export async function startBaseline(
  kind: 'bare-http' | 'bare-fastify',
  listen: { path: string } | { host: string; port: number },
  shape: AnswerShape,
): Promise<Baseline> {
  const script = new URL(`../baselines/${kind}.js`, import.meta.url).pathname;
  // BENCH_BASELINE_NODE_ARGS as BENCH_DAEMON_NODE_ARGS: profile the baseline the same way as the daemon.
  const nodeArgs = [...(process.env.PERF ? ['--perf-basic-prof'] : []), ...(process.env.BENCH_BASELINE_NODE_ARGS?.split(' ').filter(Boolean) ?? [])];
  const child = spawn(process.execPath, [...nodeArgs, script], {
    env: { ...process.env, BENCH_BASELINE: JSON.stringify({ listen, ...shape }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`${kind} exited with ${code}`)));
  });
  const exited = once(child, 'exit');
  return {
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
