import { spawnSync } from 'node:child_process';
import type { Logger } from '../log.js';

/**
 * A core dump of the daemon would hold the refresh tokens and the passphrase. Node cannot call
 * setrlimit or prctl(PR_SET_DUMPABLE) itself, so on Linux util-linux's prlimit sets this process's
 * core size limit to 0 (soft and hard: it cannot be raised again). Bounded at 2 s; failure is logged.
 */
export function disableCoreDumps(logger: Logger, platform = process.platform): boolean {
  if (platform !== 'linux') {
    logger.info({ event: 'core_dumps_unchanged', platform }, 'core dumps are not disabled on this platform; see docs/security.md');
    return false;
  }
  const result = spawnSync('prlimit', ['--pid', String(process.pid), '--core=0:0'], { stdio: 'ignore', timeout: 2_000 });
  if (result.status === 0) {
    logger.info({ event: 'core_dumps_disabled' }, 'core dumps disabled for the daemon');
    return true;
  }
  logger.warn(
    { event: 'core_dumps_not_disabled', reason: result.error === undefined ? `prlimit exited ${String(result.status)}` : 'prlimit not found' },
    'could not disable core dumps (install util-linux, or set LimitCORE=0 in the service unit)',
  );
  return false;
}
