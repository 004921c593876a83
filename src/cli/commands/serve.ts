import { loadConfig, SECRET_ENVIRONMENT, type Flags, type StoreSetting } from '../../config/config.js';
import { ExitCode, UsageError } from '../../errors.js';
import { createLogger } from '../../log.js';
import { startDaemon } from '../../server/daemon.js';
import { disableCoreDumps } from '../../server/process-hardening.js';
import { parseFlags } from '../args.js';
import type { Io } from '../io.js';

export const summary = 'run the daemon in the foreground (logs to stderr)';
export const usage = `Usage: tokend serve [--socket PATH] [--store auto|keychain|file|memory]

Runs the daemon in the foreground; JSON logs go to stderr. SIGTERM or SIGINT stops it cleanly.

  --socket PATH         the Unix socket (default: $XDG_RUNTIME_DIR/tokend/tokend.sock)
  --store S             where refresh tokens live: auto (keychain if reachable, else an announced
                        file store), keychain, file (TOKEND_FILE_PASSPHRASE encrypts it), memory
  --metadata-port PORT  (not available yet)`;

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
    if (!Number.isInteger(port)) throw new UsageError('--metadata-port must be a port number');
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
  const daemon = await startDaemon({ config, logger });
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
