import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import type { ProjectNumberStatus } from '../protocol.js';
import { shellQuote } from '../fs/private-path.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The variables that point programs at this user's tokend: TOKEND_SOCKET for tokend's own clients,
 * and, when the metadata listener is configured, all three GCE_METADATA_* (Node and Go read HOST,
 * Python's ping reads IP, Python 1.x and gcloud read ROOT).
 */
export function clientEnvironment(config: Config): Record<string, string> {
  const variables: Record<string, string> = {};
  const port = config.settings.metadataPort;
  if (port !== undefined) {
    const listener = `127.0.0.1:${port}`;
    Object.assign(variables, { GCE_METADATA_HOST: listener, GCE_METADATA_IP: listener, GCE_METADATA_ROOT: listener });
  }
  variables.TOKEND_SOCKET = config.settings.socket;
  return variables;
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

/**
 * What would make Google's clients ignore the metadata listener (they look for credentials in this
 * order: GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, the metadata server), each with the
 * command that removes the cause.
 */
export function shadowingWarnings(env: Env, listenerPort: number | undefined): string[] {
  const warnings: string[] = [];
  if (listenerPort === undefined) {
    warnings.push(
      'the metadata listener is off, so Google\'s SDKs and gcloud cannot get tokens from tokend: set TOKEND_METADATA_PORT=8085 (or "metadataPort" in the config file) for the daemon and restart it',
    );
  }
  const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS;
  if (keyFile !== undefined && keyFile !== '') {
    warnings.push(`GOOGLE_APPLICATION_CREDENTIALS is set (${keyFile}): clients use that file, not tokend; run \`unset GOOGLE_APPLICATION_CREDENTIALS\``);
  }
  const dir = gcloudConfigDir(env);
  const adc = join(dir, 'application_default_credentials.json');
  if (existsSync(adc)) {
    warnings.push(`${adc} exists: clients use it before the metadata server; run \`gcloud auth application-default revoke\` (or move the file away)`);
  }
  const account = gcloudAccount(dir);
  if (account !== undefined) {
    warnings.push(`gcloud is logged in as ${account} and uses that, not tokend; run \`gcloud config unset account\` to let it use the metadata server`);
  }
  const detection = readOrUndefined(join(dir, 'gce'))?.trim();
  if (detection !== undefined && detection !== 'True') {
    warnings.push(`gcloud remembered that it found no metadata server (${join(dir, 'gce')}); run \`rm ${shellQuote(join(dir, 'gce'))}\` once the listener runs`);
  }
  return warnings;
}

/** What makes gcloud ignore the listener for want of the project number, or undefined when nothing does. */
export function projectNumberWarning(status: ProjectNumberStatus): string | undefined {
  if (status.state !== 'unknown') return undefined;
  return `gcloud ignores the metadata listener while the project number is unknown (${status.reason}): ${status.hint}`;
}
