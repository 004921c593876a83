import { describeOrigin, loadConfig, SECRET_ENVIRONMENT, type Flags, type StoreSetting } from '../../config/config.js';
import { defaultSocketPath, type Env } from '../../config/paths.js';
import { ExitCode, UsageError } from '../../errors.js';
import { createLogger } from '../../log.js';
import { startDaemon } from '../../server/daemon.js';
import { takeInheritedSockets } from '../../server/inherited-sockets.js';
import { disableCoreDumps } from '../../server/process-hardening.js';
import { parseFlags } from '../args.js';
import type { Io } from '../io.js';

export const summary = 'run the daemon in the foreground (logs to stderr)';
export const usage = (env: Env): string => `Usage: tokend serve [--socket PATH] [--store auto|keychain|file|memory]

Runs the daemon in the foreground; JSON logs go to stderr. SIGTERM or SIGINT stops it cleanly.

  --socket PATH         the Unix socket (here: ${socketHere(env)})
  --store S             where refresh tokens live: auto (keychain if reachable, else an announced
                        file store), keychain, file (TOKEND_FILE_PASSPHRASE encrypts it), memory
  --metadata-port PORT  (not available yet)`;

/** The socket this user's daemon would use, and why: the same resolution as every command. */
function socketHere(env: Env): string {
  try {
    const config = loadConfig({}, env);
    return config.sources.socket === 'default' ? config.settings.socket : `${config.settings.socket}, from ${describeOrigin(config, 'socket')}`;
  } catch {
    return defaultSocketPath(env);
  }
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags('serve', argv, {
    socket: { type: 'string' },
    store: { type: 'string' },
    'metadata-port': { type: 'string' },
  });
  const flags: Flags = {};
  if (values.socket !== undefined) flags.socket = values.socket;
  if (values.store !== undefined) flags.store = values.store as StoreSetting;
  if (values['metadata-port'] !== undefined) {
    const port = Number(values['metadata-port']);
    if (!Number.isInteger(port)) throw new UsageError(`--metadata-port must be a port number (got ${JSON.stringify(values['metadata-port'])})`, {
        hint: 'give a port from 1 to 65535, e.g. `tokend serve --metadata-port 8085`',
      });
    flags.metadataPort = port;
  }
  const config = loadConfig(flags, io.env);
  // The config holds it now; nothing this process starts (a worker, a child) inherits it.
  for (const name of SECRET_ENVIRONMENT) delete process.env[name];
  const logger = createLogger({ level: config.settings.logLevel });
  disableCoreDumps(logger);
  // A daemon keeps serving: a stray rejection is a bug to log, not a reason to drop every caller.
  process.on('unhandledRejection', (reason) => {
    logger.error({ event: 'unhandled_rejection', err: reason }, 'unhandled promise rejection');
  });
  // From process.env itself, and removed there: no child may believe the sockets are its own.
  const daemon = await startDaemon({ config, logger, inherited: takeInheritedSockets(process.env) });
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ event: 'forced_exit', signal }, 'second signal: exiting now');
        process.exit(ExitCode.failure);
      }
      stopping = true;
      logger.info({ event: 'stopping', signal }, `received ${signal}, finishing requests in flight`);
      daemon.close().then(resolve, (error: unknown) => {
        logger.error({ event: 'shutdown_failed', err: error }, 'shutdown failed');
        resolve();
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  return ExitCode.ok;
}
