import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { TokendClient } from '../client/socket-client.js';
import { isTokendError } from '../errors.js';
import { shellQuote } from '../fs/private-path.js';
import type { ProjectNumberStatus } from '../protocol.js';

type Env = Readonly<Record<string, string | undefined>>;

/** A shell's start-up must not hang on a stuck daemon. */
const DAEMON_TIMEOUT_MS = 2_000;

/** What the running daemon says of itself, or why it could not be asked. */
type DaemonAnswer =
  | { running: true; metadataPort: number | undefined; projectNumber: ProjectNumberStatus | undefined }
  | { running: false; problem: string };

interface StatusView {
  daemon?: { metadata?: { port?: unknown } | null };
  projectNumber?: ProjectNumberStatus;
}

async function askDaemon(socketPath: string): Promise<DaemonAnswer> {
  try {
    const status = (await new TokendClient({ socketPath, timeoutMs: DAEMON_TIMEOUT_MS }).status()) as StatusView;
    const port = status.daemon?.metadata?.port;
    return { running: true, metadataPort: typeof port === 'number' ? port : undefined, projectNumber: status.projectNumber };
  } catch (error) {
    const hint = isTokendError(error) ? error.hint : undefined;
    return { running: false, problem: `${(error as Error).message}, so programs pointed at it get no tokens${hint === undefined ? '' : `: ${hint}`}` };
  }
}

/**
 * The variables that point programs at this user's tokend — TOKEND_SOCKET for tokend's own clients
 * and, when there is a metadata listener, all three GCE_METADATA_* (Node and Go read HOST, Python's
 * ping reads IP, Python 1.x and gcloud read ROOT) — and the warnings about what would still keep
 * Google's clients from tokend. The running daemon's listener wins over this shell's configuration:
 * the daemon may have been started with a TOKEND_METADATA_PORT this shell does not have, or without
 * the one it has. Only when no daemon answers is the configuration taken at its word.
 */
export async function pointAtDaemon(config: Config, env: Env): Promise<{ variables: Record<string, string>; warnings: string[] }> {
  const daemon = await askDaemon(config.settings.socket);
  const port = daemon.running ? daemon.metadataPort : config.settings.metadataPort;
  const variables: Record<string, string> = {};
  if (port !== undefined) {
    const listener = `127.0.0.1:${port}`;
    Object.assign(variables, { GCE_METADATA_HOST: listener, GCE_METADATA_IP: listener, GCE_METADATA_ROOT: listener });
  }
  variables.TOKEND_SOCKET = config.settings.socket;

  const warnings: string[] = [];
  if (!daemon.running) warnings.push(daemon.problem);
  if (port === undefined) {
    const what = daemon.running ? 'the running daemon has no metadata listener' : 'the metadata listener is off';
    warnings.push(
      `${what}, so Google's SDKs and gcloud cannot get tokens from tokend: set TOKEND_METADATA_PORT=8085 (or "metadataPort": 8085 in ${config.configFile}) for the daemon and restart it`,
    );
  }
  warnings.push(...shadows(env).map((shadow) => shadow.warning));
  const projectNumber = daemon.running && port !== undefined ? daemon.projectNumber : undefined;
  if (projectNumber?.state === 'unknown') {
    warnings.push(`gcloud ignores the metadata listener while the project number is unknown (${projectNumber.reason}): ${projectNumber.hint}`);
  }
  return { variables, warnings };
}

/** gcloud's configuration directory, as gcloud finds it. */
export function gcloudConfigDir(env: Env): string {
  return env.CLOUDSDK_CONFIG !== undefined && env.CLOUDSDK_CONFIG !== '' ? env.CLOUDSDK_CONFIG : join(env.HOME ?? homedir(), '.config', 'gcloud');
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The account set in gcloud's active configuration, if any: gcloud then uses it, not the metadata server. */
function gcloudAccount(dir: string): string | undefined {
  const active = readOrUndefined(join(dir, 'active_config'))?.trim() || 'default';
  const config = readOrUndefined(join(dir, 'configurations', `config_${active}`));
  if (config === undefined) return undefined;
  let section = '';
  for (const raw of config.split('\n')) {
    const line = raw.trim();
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) section = header[1]!;
    const account = /^account\s*=\s*(\S+)/.exec(line);
    if (section === 'core' && account !== null) return account[1];
  }
  return undefined;
}

/** Something that would make Google's clients pass tokend by, and the command that removes it. */
export interface Shadow {
  id: 'google-application-credentials' | 'gcloud-adc' | 'gcloud-account' | 'gcloud-gce-cache';
  /** The whole warning, with its fix, as `tokend env` prints it. */
  warning: string;
  fix: string;
}

/**
 * What would make Google's clients ignore the metadata listener (they look for credentials in this
 * order: GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, the metadata server), each with the
 * command that removes the cause.
 */
export function shadows(env: Env): Shadow[] {
  const found: Shadow[] = [];
  const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS;
  if (keyFile !== undefined && keyFile !== '') {
    const fix = 'unset GOOGLE_APPLICATION_CREDENTIALS';
    found.push({ id: 'google-application-credentials', fix, warning: `GOOGLE_APPLICATION_CREDENTIALS is set (${keyFile}): clients use that file, not tokend; run \`${fix}\`` });
  }
  const dir = gcloudConfigDir(env);
  const adc = join(dir, 'application_default_credentials.json');
  if (existsSync(adc)) {
    const fix = 'gcloud auth application-default revoke';
    found.push({ id: 'gcloud-adc', fix, warning: `${adc} exists: clients use it before the metadata server; run \`${fix}\` (or move the file away)` });
  }
  const account = gcloudAccount(dir);
  if (account !== undefined) {
    const fix = 'gcloud config unset account';
    found.push({ id: 'gcloud-account', fix, warning: `gcloud is logged in as ${account} and uses that, not tokend; run \`${fix}\` to let it use the metadata server` });
  }
  const detection = readOrUndefined(join(dir, 'gce'))?.trim();
  if (detection !== undefined && detection !== 'True') {
    const fix = `rm ${shellQuote(join(dir, 'gce'))}`;
    found.push({ id: 'gcloud-gce-cache', fix, warning: `gcloud remembered that it found no metadata server (${join(dir, 'gce')}); run \`${fix}\` once the listener runs` });
  }
  return found;
}
