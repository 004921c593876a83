import { ExitCode } from '../../errors.js';
import { parseFlags } from '../args.js';
import { clientFor, socketOption } from '../context.js';
import { line, type Io } from '../io.js';
import { apiScopeList } from '../scope-names.js';
import type { ProjectNumberStatus } from '../../protocol.js';

export const summary = 'daemon, store, accounts, granted scopes, health, cached tokens';
export const usage = `Usage: tokend status [--json]

  --json         print the daemon's status document as JSON
  --socket PATH  the daemon's socket`;

interface StatusDocument {
  daemon: {
    version: string;
    pid: number;
    socket: string;
    uptimeSeconds: number;
    metadata: { port: number; addresses: string[]; peerCheck: 'uid' | 'unverified' } | null;
  };
  store: { kind: string; description: string; reason: string; warning?: string };
  projectNumber: ProjectNumberStatus;
  accounts: Array<{
    email: string;
    default: boolean;
    grantedScopes: string[];
    health: { state: string; reason?: string; since?: string };
    upstream: {
      lastSuccess: string | null;
      lastFailure: { at: string; reason: string } | null;
      pause: { seconds: number; reason: string } | null;
    };
    tokens: Array<{ scopes: string[]; expiresIn: number; backgroundRefresh: boolean }>;
  }>;
  unreadableRecords: Array<{ entry: string; problem: string }>;
}


export function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

/** The OAuth server's recent answers, newest first: `failing for 2m10s (...); last success 14m ago`. */
export function describeUpstream(upstream: StatusDocument['accounts'][number]['upstream'], now: number): string | undefined {
  const ago = (iso: string) => `${formatDuration(Math.max(0, Math.round((now - Date.parse(iso)) / 1000)))} ago`;
  const { lastSuccess, lastFailure, pause } = upstream;
  const parts: string[] = [];
  const failingNow = lastFailure !== null && (lastSuccess === null || Date.parse(lastFailure.at) > Date.parse(lastSuccess));
  if (failingNow) parts.push(`FAILING — last failure ${ago(lastFailure.at)}, ${lastFailure.reason}`);
  if (pause !== null) parts.push(`tokend holds off the OAuth server for ${formatDuration(pause.seconds)} more`);
  if (lastSuccess !== null) parts.push(`last success ${ago(lastSuccess)}`);
  if (!failingNow && lastFailure !== null) parts.push(`last failure ${ago(lastFailure.at)}, ${lastFailure.reason}`);
  return parts.length === 0 ? undefined : parts.join('; ');
}

function describeProjectNumber(project: ProjectNumberStatus): string[] {
  switch (project.state) {
    case 'configured':
      return [`project:  number ${project.projectNumber} (configured)`];
    case 'found':
      return [`project:  ${project.projectId}, number ${project.projectNumber} (from the Resource Manager)`];
    case 'looking':
      return [`project:  ${project.projectId}, number being looked up`];
    case 'unknown':
      return [`project:  ${project.projectId === undefined ? '' : `${project.projectId}, `}number UNKNOWN: ${project.reason}`, `          gcloud ignores the metadata listener without it: ${project.hint}`];
  }
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags('status', argv, { json: { type: 'boolean' }, ...socketOption });
  const status = (await clientFor(io, values.socket).status()) as unknown as StatusDocument;
  if (values.json === true) {
    line(io.stdout, JSON.stringify(status, null, 2));
    return ExitCode.ok;
  }
  const out = (text: string) => line(io.stdout, text);
  const { daemon, store } = status;
  out(`daemon:   running (pid ${daemon.pid}, tokend ${daemon.version}, up ${formatDuration(daemon.uptimeSeconds)})`);
  out(`socket:   ${daemon.socket}`);
  const { metadata } = daemon;
  out(
    metadata === null
      ? 'metadata: off (Google SDKs and gcloud need it: set TOKEND_METADATA_PORT=8085 for the daemon; `tokend env` prints the rest)'
      : `metadata: ${metadata.addresses.map((address) => (address.includes(':') ? `[${address}]` : address)).join(', ')} port ${metadata.port}, ${metadata.peerCheck === 'uid' ? 'your own user only' : 'ANY LOCAL USER (the owner cannot be checked on this platform)'}`,
  );
  if (metadata !== null) for (const text of describeProjectNumber(status.projectNumber)) out(text);
  out(`store:    ${store.description}`);
  out(`          ${store.reason}`);
  if (store.warning !== undefined) out(`warning:  ${store.warning}`);
  if (status.accounts.length === 0) {
    out('accounts: none — run `tokend login --client-secrets client_secrets.json --scopes cloud-platform`');
  } else {
    out('accounts:');
  }
  for (const account of status.accounts) {
    const health =
      account.health.state === 'ok' ? 'ok' : `CONSENT REQUIRED since ${account.health.since ?? '?'}: ${account.health.reason ?? ''}`;
    out(`  ${account.email}${account.default ? ' (default)' : ''}: ${health}`);
    out(`    granted: ${apiScopeList(account.grantedScopes) || '(identity only)'}`);
    const upstream = describeUpstream(account.upstream, Date.now());
    if (upstream !== undefined) out(`    upstream: ${upstream}`);
    for (const token of account.tokens) {
      out(`    token:   ${apiScopeList(token.scopes) || '(identity only)'}, expires in ${formatDuration(token.expiresIn)}${token.backgroundRefresh ? ', kept fresh' : ''}`);
    }
  }
  if (status.accounts.length > 0 && !status.accounts.some((account) => account.default)) {
    out(`default:  none — programs must name an account, or run \`tokend default ${status.accounts[0]!.email}\``);
  }
  for (const record of status.unreadableRecords) out(`unreadable record ${record.entry}: ${record.problem}`);
  return ExitCode.ok;
}
