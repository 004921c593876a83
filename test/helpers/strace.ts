import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';

/**
 * Delays every `syscall` of every thread of `pid` by `seconds`, until stopped (strace's fault
 * injection): the process is then held at that point, where a test kills it. Resolves once attached,
 * within 10 s.
 */
export async function holdSyscall(pid: number, syscall: string, seconds: number): Promise<{ stop(): void }> {
  const threads = readdirSync(`/proc/${pid}/task`).flatMap((tid) => ['-p', tid]);
  const tracer = spawn('strace', ['-e', `trace=${syscall}`, '-e', `inject=${syscall}:delay_enter=${seconds * 1_000_000}`, ...threads], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let attached = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('strace did not attach within 10 s')), 10_000);
      tracer.stderr.on('data', (chunk: Buffer) => {
        attached += (chunk.toString().match(/attached/g) ?? []).length;
        if (attached >= threads.length / 2) {
          clearTimeout(timer);
          resolve();
        }
      });
      tracer.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`strace exited with ${code}`));
      });
    });
  } catch (error) {
    tracer.kill('SIGKILL');
    throw error;
  }
  return { stop: () => tracer.kill('SIGKILL') };
}

/** Holds every fsync: a write is then held at its durability point. */
export function holdFsyncs(pid: number, seconds: number): Promise<{ stop(): void }> {
  return holdSyscall(pid, 'fsync', seconds);
}
