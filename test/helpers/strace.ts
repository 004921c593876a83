import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';

/**
 * Delays every fsync of every thread of `pid` by `seconds`, until stopped (strace's fault injection):
 * a write is then held at its durability point, where a test kills the process. Resolves once attached.
 */
export async function holdFsyncs(pid: number, seconds: number): Promise<{ stop(): void }> {
  const threads = readdirSync(`/proc/${pid}/task`).flatMap((tid) => ['-p', tid]);
  const tracer = spawn('strace', ['-e', 'trace=fsync', '-e', `inject=fsync:delay_enter=${seconds * 1_000_000}`, ...threads], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let attached = 0;
  await new Promise<void>((resolve, reject) => {
    tracer.stderr.on('data', (chunk: Buffer) => {
      attached += (chunk.toString().match(/attached/g) ?? []).length;
      if (attached >= threads.length / 2) resolve();
    });
    tracer.once('exit', (code) => reject(new Error(`strace exited with ${code}`)));
  });
  return { stop: () => tracer.kill('SIGKILL') };
}
