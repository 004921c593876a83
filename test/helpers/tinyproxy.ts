import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './daemon-process.js';

export interface Tinyproxy {
  port: number;
  /** http://127.0.0.1:PORT, with the credentials when the proxy asks for them. */
  url: string;
  /** The request lines it logged (`POST http://127.0.0.1:1234/token HTTP/1.1`, `CONNECT localhost:443 HTTP/1.1`). */
  requests(): string[];
  stop(): void;
}

/** Debian's tinyproxy on loopback, in the foreground, logging every request; optionally with basic auth. */
export async function startTinyproxy(options: { user?: string; password?: string } = {}): Promise<Tinyproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'tokend-tinyproxy-'));
  const port = await freePort();
  const log = join(dir, 'tinyproxy.log');
  const auth = options.user === undefined ? '' : `BasicAuth ${options.user} ${options.password}\n`;
  writeFileSync(
    join(dir, 'tinyproxy.conf'),
    `Port ${port}\nListen 127.0.0.1\nTimeout 30\nLogFile "${log}"\nLogLevel Connect\nMaxClients 50\nAllow 127.0.0.1\nDisableViaHeader Yes\n${auth}`,
  );
  const child = spawn('tinyproxy', ['-d', '-c', join(dir, 'tinyproxy.conf')], { stdio: 'ignore' });
  // Ready when it accepts a connection (bounded).
  for (let attempt = 0; ; attempt++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) break;
    if (attempt > 100 || child.exitCode !== null) throw new Error(`tinyproxy did not start: ${spawnSync('cat', [log], { encoding: 'utf8' }).stdout}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const credentials = options.user === undefined ? '' : `${encodeURIComponent(options.user)}:${encodeURIComponent(options.password ?? '')}@`;
  return {
    port,
    url: `http://${credentials}127.0.0.1:${port}`,
    requests: () =>
      readFileSync(log, 'utf8')
        .split('\n')
        .flatMap((row) => /Request \(file descriptor \d+\): (.*)$/.exec(row)?.[1] ?? []),
    stop: () => child.kill('SIGKILL'),
  };
}
