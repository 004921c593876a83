/**
 * The whole daemon (startDaemon: store, broker, consent, HTTP on a real Unix socket) inside the test
 * process, with time driven by a ManualClock, for suites that inject faults and move the clock. The
 * stand-in and the CLI stay real processes or servers; the log goes to the artifacts like a daemon's.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/log.js';
import { startDaemon, type RunningDaemon } from '../../src/server/daemon.js';
import { artifactLogPath, daemonDirs, daemonEnv, loginByPasteBack } from './daemon-process.js';
import type { StandinHandle } from './oauth-standin.js';

export interface InProcessDaemon {
  daemon: RunningDaemon;
  clock: ManualClock;
  dirs: ReturnType<typeof daemonDirs>;
  env: NodeJS.ProcessEnv;
  /** The log lines written so far, parsed. */
  events(): Array<Record<string, unknown>>;
  /** The log lines written since `mark()`, parsed. */
  eventsSince(mark: number): Array<Record<string, unknown>>;
  mark(): number;
  /** `tokend login` for the stand-in's account, by paste-back, with `scopes`. */
  login(standin: StandinHandle, scopes: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startInProcessDaemon(options: {
  name: string;
  /** Written to config.json. */
  config?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
}): Promise<InProcessDaemon> {
  const dirs = daemonDirs();
  mkdirSync(dirs.configDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dirs.configDir, 'config.json'), JSON.stringify(options.config ?? {}), { mode: 0o600 });
  const env = daemonEnv(dirs, { TOKEND_STORE: 'memory', BROWSER: 'false', ...options.env });
  const logPath = artifactLogPath(options.name);
  const logger = createLogger({ level: 'debug', destination: pino.destination({ dest: logPath, sync: true }) });
  const clock = new ManualClock(Date.now());
  const daemon = await startDaemon({ config: loadConfig({ socket: dirs.socket }, env), logger, clock });
  const lines = () =>
    readFileSync(logPath, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return {
    daemon,
    clock,
    dirs,
    env,
    events: lines,
    mark: () => lines().length,
    eventsSince: (mark) => lines().slice(mark),
    login: async (standin, scopes) => {
      const result = await loginByPasteBack(['--client-secrets', standin.writeClientSecrets(dirs.root), '--scopes', scopes], env);
      if (result.code !== 0) throw new Error(`login failed (${result.code}): ${result.stderr}`);
    },
    stop: () => daemon.close(),
  };
}
