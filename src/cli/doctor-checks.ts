import { lstat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TokendClient } from '../client/socket-client.js';
import type { Config } from '../config/config.js';
import { ConsentRequiredError, isTokendError } from '../errors.js';
import { shellQuote } from '../fs/private-path.js';
import { silentLogger } from '../log.js';
import type { ProjectNumberStatus, UpstreamProbe } from '../protocol.js';
import { describeInstallation } from '../service/installation.js';
import type { ServiceManager } from '../service/manager.js';
import type { RunCommand } from '../service/run-command.js';
import { serviceRestartCommand } from '../service/restart.js';
import { serviceStatus } from '../service/service.js';
import { keychainName, keychainRemedy } from '../store/keychain-store.js';
import { failureOf, probeKeychain } from '../store/select-store.js';
import { VERSION } from '../version.js';
import { shadows } from './client-environment.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';
export interface Check {
  id: string;
  status: CheckStatus;
  summary: string;
  /** The command (or step) that fixes it, ready to paste. */
  fix?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

export interface DoctorContext {
  config: Config;
  env: Env;
  manager: ServiceManager;
  run: RunCommand;
  /** For tests: the keychain probe's time limit. */
  keychainTimeoutMs?: number;
}

interface StatusView {
  daemon: { version: string; pid: number; socket: string; metadata: { port: number } | null; service?: string | null };
  store: { kind: string; description: string; warning?: string };
  projectNumber: ProjectNumberStatus;
  accounts: Array<{ email: string; default: boolean; health: { state: string; reason?: string } }>;
}

const ok = (id: string, summary: string): Check => ({ id, status: 'ok', summary });
const warn = (id: string, summary: string, fix?: string): Check => ({ id, status: 'warn', summary, ...(fix === undefined ? {} : { fix }) });
const fail = (id: string, summary: string, fix?: string): Check => ({ id, status: 'fail', summary, ...(fix === undefined ? {} : { fix }) });
const octal = (mode: number) => `0${(mode & 0o777).toString(8)}`;

async function socketDirectoryCheck(socket: string): Promise<Check> {
  const dir = dirname(socket);
  const info = await lstat(dir).catch(() => undefined);
  if (info === undefined) return warn('socket-directory', `${dir} does not exist yet (the daemon creates it, 0700)`, 'tokend serve');
  const uid = process.getuid?.();
  if (!info.isDirectory()) return fail('socket-directory', `${dir} is not a directory`, `rm ${shellQuote(dir)}`);
  if (uid !== undefined && info.uid !== uid) return fail('socket-directory', `${dir} belongs to uid ${info.uid}, not to you`, `choose another socket: export TOKEND_SOCKET="$HOME/.local/state/tokend/tokend.sock"`);
  if ((info.mode & 0o077) !== 0) return fail('socket-directory', `${dir} is open to other users (mode ${octal(info.mode)})`, `chmod 700 ${shellQuote(dir)}`);
  const socketInfo = await lstat(socket).catch(() => undefined);
  if (socketInfo !== undefined && socketInfo.isSocket() && (socketInfo.mode & 0o077) !== 0) {
    return fail('socket-directory', `${socket} is open to other users (mode ${octal(socketInfo.mode)})`, `chmod 600 ${shellQuote(socket)}`);
  }
  return ok('socket-directory', `${dir} is yours and private (0700)${socketInfo?.isSocket() === true ? ', the socket 0600' : ''}`);
}

async function keychainCheck(context: DoctorContext, store: StatusView['store'] | undefined): Promise<Check> {
  const { probe } = await probeKeychain({ configDir: context.config.configDir, logger: silentLogger(), keychainTimeoutMs: context.keychainTimeoutMs ?? context.config.settings.keychainTimeoutMs });
  const name = keychainName(process.platform);
  if (probe.ok) {
    if (store?.kind === 'file') return warn('keychain', `${name} answers and is unlocked, but your accounts are in the file store`, 'tokend store migrate --to keychain');
    return ok('keychain', `${name} answers and is unlocked (${probe.elapsedMs} ms)`);
  }
  const fix = keychainRemedy(process.platform, failureOf(probe));
  if (store?.kind === 'keychain') return fail('keychain', `the daemon keeps your accounts in ${name}, which is not usable now: ${probe.reason}`, fix);
  return warn('keychain', `${name} is not usable: ${probe.reason}${store === undefined ? '' : `; the daemon uses ${store.description}`}`, fix);
}

function projectNumberCheck(status: ProjectNumberStatus): Check {
  switch (status.state) {
    case 'configured':
      return ok('project-number', `${status.projectNumber} (configured)`);
    case 'found':
      return ok('project-number', `${status.projectNumber} (project ${status.projectId}, looked up)`);
    case 'looking':
      return ok('project-number', `being looked up for project ${status.projectId}`);
    default:
      return warn('project-number', `unknown (${status.reason}): gcloud ignores the metadata listener without it`, status.hint);
  }
}

function upstreamChecks(probes: UpstreamProbe[]): Check[] {
  const checks: Check[] = [];
  for (const probe of probes) {
    const id = `upstream ${probe.endpoint}`;
    checks.push(probe.reachable ? ok(id, `answers ${probe.route} (HTTP ${probe.status ?? '?'}, ${probe.elapsedMs} ms)`) : fail(id, `${probe.problem ?? 'cannot be reached'}`, probe.hint));
  }
  const skews = probes.filter((probe) => probe.skewSeconds !== undefined);
  const worst = skews.reduce<UpstreamProbe | undefined>((a, b) => (a === undefined || Math.abs(b.skewSeconds!) > Math.abs(a.skewSeconds!) ? b : a), undefined);
  if (worst === undefined) {
    checks.push(warn('clock', 'no upstream answered with a Date header to compare this clock against'));
  } else {
    const skew = worst.skewSeconds!;
    const said = `this clock is ${Math.abs(skew)} s ${skew > 0 ? 'behind' : 'ahead of'} ${worst.endpoint}`;
    const fix = 'turn on time synchronisation: sudo timedatectl set-ntp true';
    if (Math.abs(skew) > 300) checks.push(fail('clock', `${said}: signatures and certificates are judged wrong by that much`, fix));
    else if (Math.abs(skew) > 30) checks.push(warn('clock', said, fix));
    else checks.push(ok('clock', `within ${Math.max(1, Math.abs(skew))} s of ${worst.endpoint}`));
  }
  return checks;
}

/** Every check `tokend doctor` makes, in the order a person would fix things. */
export async function runChecks(context: DoctorContext): Promise<Check[]> {
  const { config, env } = context;
  const socket = config.settings.socket;
  const checks: Check[] = [await socketDirectoryCheck(socket)];
  const client = new TokendClient({ socketPath: socket, timeoutMs: 5_000 });
  let status: StatusView | undefined;
  try {
    status = (await client.status()) as unknown as StatusView;
  } catch (error) {
    checks.push(fail('daemon', `no daemon answers on ${socket}: ${(error as Error).message}`, isTokendError(error) ? error.hint : 'tokend serve'));
  }
  checks.push(await keychainCheck(context, status?.store));
  if (status !== undefined) {
    checks.push(
      status.daemon.version === VERSION
        ? ok('daemon', `tokend ${VERSION}, pid ${status.daemon.pid}, on ${socket}`)
        : warn('daemon', `the daemon runs tokend ${status.daemon.version}, this command is ${VERSION}`, restartCommand(status.daemon.service, status.daemon.pid)),
    );
    if (status.accounts.length === 0) checks.push(fail('accounts', 'no account is logged in', 'tokend login --client-secrets client_secrets.json'));
    for (const account of status.accounts) checks.push(await accountCheck(client, account));
    const port = status.daemon.metadata?.port;
    if (port === undefined) {
      checks.push(warn('metadata-listener', "off: Google's SDKs and gcloud cannot get tokens from tokend", `put "metadataPort": 8085 in ${config.configFile}, then restart the daemon`));
    } else {
      checks.push(ok('metadata-listener', `127.0.0.1:${port}`));
      const host = env.GCE_METADATA_HOST;
      checks.push(
        host === `127.0.0.1:${port}`
          ? ok('environment', `GCE_METADATA_HOST points at the listener`)
          : warn('environment', host === undefined || host === '' ? 'this shell does not point Google\'s SDKs at the listener' : `GCE_METADATA_HOST is ${host}, not the listener (127.0.0.1:${port})`, 'eval "$(tokend env)"'),
      );
      checks.push(projectNumberCheck(status.projectNumber));
    }
  }
  const found = shadows(env);
  const shadowIds = ['google-application-credentials', 'gcloud-adc', 'gcloud-account', 'gcloud-gce-cache'] as const;
  const labels = { 'google-application-credentials': 'GOOGLE_APPLICATION_CREDENTIALS is not set', 'gcloud-adc': "no gcloud application-default credentials file", 'gcloud-account': 'gcloud is not logged in with an account of its own', 'gcloud-gce-cache': 'gcloud has not cached "not on GCE"' };
  for (const id of shadowIds) {
    const shadow = found.find((candidate) => candidate.id === id);
    checks.push(shadow === undefined ? ok(id, labels[id]) : warn(id, shadow.warning.replace(/; run `[^`]+`.*$/, ''), shadow.fix));
  }
  if (status !== undefined) {
    try {
      checks.push(...upstreamChecks((await client.probeUpstream()).probes));
    } catch (error) {
      checks.push(warn('upstream', `the daemon could not be asked: ${(error as Error).message}`));
    }
  }
  checks.push(await serviceCheck(context));
  return checks;
}

function restartCommand(service: string | null | undefined, pid: number): string {
  return serviceRestartCommand(service) ?? `stop the \`tokend serve\` running as pid ${pid} (Ctrl-C in its terminal, or \`kill ${pid}\`) and start it again`;
}

async function accountCheck(client: TokendClient, account: StatusView['accounts'][number]): Promise<Check> {
  const id = `account ${account.email}`;
  if (account.health.state === 'ok') return ok(id, `ok${account.default ? ' (default)' : ''}`);
  // The daemon knows the exact command (client file, scopes); it answers at once for such an account.
  let fix: string | undefined;
  try {
    await client.getToken({ account: account.email });
  } catch (error) {
    if (error instanceof ConsentRequiredError) fix = error.hint?.replace(/^run `([^`]+)`.*$/, '$1');
  }
  return fail(id, `must consent again: ${account.health.reason ?? 'the refresh token no longer works'}`, fix);
}

async function serviceCheck(context: DoctorContext): Promise<Check> {
  const status = await serviceStatus({ manager: context.manager, install: describeInstallation(context.config, context.env), run: context.run, env: context.env });
  if (!status.installed) {
    return status.unavailable === undefined ? warn('service', `not installed as a service of ${status.manager}`, 'tokend service install') : warn('service', `not installed; ${status.unavailable}`, 'tokend serve');
  }
  // Files first: they are wrong whether or not a manager is there to run them.
  if (status.files.some((file) => file.state !== 'current')) return warn('service', 'installed from another version or configuration', 'tokend service install');
  if (status.unavailable !== undefined) return warn('service', `installed, but ${status.unavailable}`);
  const bad = status.units.filter((unit) => !unit.ok);
  if (bad.length > 0) return fail('service', bad.map((unit) => `${unit.name}: ${unit.state}`).join('; '), context.manager.kind === 'systemd' ? 'journalctl --user -u tokend -n 50' : 'tail -n 50 ~/Library/Logs/tokend/tokend.log');
  return ok('service', `installed and enabled (${status.units.map((unit) => `${unit.name}: ${unit.state}`).join('; ')})`);
}
