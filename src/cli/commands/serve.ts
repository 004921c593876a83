import { describeOrigin, loadConfig, SECRET_ENVIRONMENT, type Config, type Flags, type StoreSetting } from '../../config/config.js';
import { defaultSocketPath, type Env } from '../../config/paths.js';
import { ExitCode, isTokendError, UsageError } from '../../errors.js';
import { createLogger, type Logger } from '../../log.js';
import { startDaemon, type RunningDaemon } from '../../server/daemon.js';
import { takeInheritedSockets } from '../../server/inherited-sockets.js';
import { serviceRestartCommand } from '../../service/restart.js';
import { disableCoreDumps } from '../../server/process-hardening.js';
import { parseFlags } from '../args.js';
import type { Io } from '../io.js';

export const summary = 'run the daemon in the foreground (logs to stderr)';
export const usage = (env: Env): string => `Usage: tokend serve [--socket PATH] [--store auto|keychain|file|memory] [--metadata-port PORT]
                    [--log-level LEVEL] [--log-format json|pretty]

Runs the daemon in the foreground; logs go to stderr. SIGTERM or SIGINT stops it: requests in flight
finish (for at most ${SHUTDOWN_GRACE_MS / 1000} s), then it exits. SIGHUP reloads the configuration: the log level,
projectNumber, zone and prefetchScopes change at once; the rest waits for a restart (the log says
which); a configuration with an error is refused and the old one kept.

  --socket PATH         the Unix socket (here: ${socketHere(env)})
  --store S             where refresh tokens live: auto (keychain if reachable, else an announced
                        file store), keychain, file (TOKEND_FILE_PASSPHRASE encrypts it), memory
  --metadata-port PORT  also serve the metadata tree on 127.0.0.1:PORT, for Google's SDKs
  --log-level LEVEL     fatal, error, warn, info (default), debug, trace or silent (TOKEND_LOG_LEVEL)
  --log-format F        json (default; one object per line) or pretty (for reading) (TOKEND_LOG_FORMAT)`;

/** How long SIGTERM waits for requests in flight; the service units give it twice that. */
export const SHUTDOWN_GRACE_MS = 10_000;

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
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
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
  if (values['log-level'] !== undefined) flags.logLevel = values['log-level'];
  if (values['log-format'] !== undefined) flags.logFormat = values['log-format'] as Flags['logFormat'];
  const config = loadConfig(flags, io.env);
  // The config holds it now; nothing this process starts (a worker, a child) inherits it.
  for (const name of SECRET_ENVIRONMENT) delete process.env[name];
  const logger = createLogger({ level: config.settings.logLevel, format: config.settings.logFormat });
  disableCoreDumps(logger);
  // A daemon keeps serving: a stray rejection is a bug to log, not a reason to drop every caller.
  process.on('unhandledRejection', (reason) => {
    logger.error({ event: 'unhandled_rejection', err: reason }, 'unhandled promise rejection');
  });
  // A reload asked for while the daemon starts (systemctl reload right after start) waits for it,
  // rather than meeting SIGHUP's default action, which ends the process.
  const reloads: { daemon?: RunningDaemon; waiting: boolean } = { waiting: false };
  const reload = () => {
    if (reloads.daemon === undefined) reloads.waiting = true;
    else reloadConfiguration(reloads.daemon, () => loadConfig(flags, io.env), logger);
  };
  process.on('SIGHUP', reload);
  // From process.env itself, and removed there: no child may believe the sockets are its own.
  const daemon = await startDaemon({ config, logger, inherited: takeInheritedSockets(process.env) });
  reloads.daemon = daemon;
  // Cache hits are counted before they are logged: a crash or a forced exit writes them first (SIGKILL cannot).
  process.on('exit', () => daemon.broker.flushAudit());
  if (reloads.waiting) reload();
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ event: 'forced_exit', signal }, 'second signal: exiting now');
        process.exit(ExitCode.failure);
      }
      stopping = true;
      logger.info({ event: 'stopping', signal }, `received ${signal}, finishing requests in flight`);
      // Bounded: a request stuck upstream must not keep a service manager waiting for the kill.
      const grace = setTimeout(() => {
        logger.warn({ event: 'shutdown_timeout', grace_ms: SHUTDOWN_GRACE_MS }, `requests still in flight after ${SHUTDOWN_GRACE_MS / 1000} s: exiting without them`);
        // Their sockets would keep the process alive: the log is written synchronously, so exit now.
        process.exit(ExitCode.failure);
      }, SHUTDOWN_GRACE_MS);
      grace.unref();
      daemon.close().then(
        () => {
          clearTimeout(grace);
          resolve(ExitCode.ok);
        },
        (error: unknown) => {
          clearTimeout(grace);
          logger.error({ event: 'shutdown_failed', err: error }, 'shutdown failed');
          resolve(ExitCode.failure);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

/** The command that applies settings a reload cannot, for how this daemon runs. */
function howToApply(settings: string[], service = process.env.TOKEND_SERVICE): string {
  // Under systemd the socket units own the listeners: a restart would inherit the old ones.
  if (service === 'systemd' && settings.some((name) => ['socket', 'metadataPort', 'metadataIpv6'].includes(name))) return 'once the units are rewritten: `tokend service install`';
  const restart = serviceRestartCommand(service);
  return restart === undefined ? 'at the next start of `tokend serve`' : `at the next start: \`${restart}\``;
}

/** SIGHUP: the configuration read again as at start; an invalid one changes nothing. */
export function reloadConfiguration(daemon: Pick<RunningDaemon, 'reload'>, read: () => Config, logger: Logger): void {
  try {
    const { applied, needRestart } = daemon.reload(read());
    const done = applied.length === 0 ? 'configuration reloaded: nothing to change now' : `configuration reloaded: ${applied.join(', ')} applied`;
    if (needRestart.length === 0) {
      logger.info({ event: 'config_reloaded', applied, need_restart: needRestart }, done);
    } else {
      logger.warn(
        { event: 'config_reloaded', applied, need_restart: needRestart },
        `${done}; ${needRestart.join(', ')} changed and take${needRestart.length === 1 ? 's' : ''} effect ${howToApply(needRestart)}`,
      );
    }
  } catch (error) {
    logger.error(
      { event: 'config_reload_failed', err: error, ...(isTokendError(error) ? { hint: error.hint } : {}) },
      `configuration not reloaded, the one in use is kept: ${isTokendError(error) ? error.message : 'unexpected error'}`,
    );
  }
}
