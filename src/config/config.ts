import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError, isTokendError } from '../errors.js';
import { readPrivateFileSync } from '../fs/private-path.js';
import { LOG_FORMATS, type LogFormat } from '../log-format.js';
import { GOOGLE_RESOURCE_MANAGER } from '../oauth/google-endpoints.js';
import { STORE_SETTINGS, type StoreSetting } from '../store/secret-store.js';
import { defaultConfigDir, defaultSocketPath, type Env } from './paths.js';

export type { StoreSetting };
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export type Source = 'flag' | 'env' | 'file' | 'default';

export interface Settings {
  socket: string;
  store: StoreSetting;
  metadataPort: number | undefined;
  /** Also listen on [::1] (IPv4 127.0.0.1 always). */
  metadataIpv6: boolean;
  /** Where the peer's uid cannot be looked up (macOS): start the metadata listener anyway. */
  metadataAllowUnverifiedPeers: boolean;
  /** The numeric id of the project, for `project/numeric-project-id` (gcloud needs it). */
  projectNumber: string | undefined;
  /** `instance/zone`, for programs that read it. */
  zone: string | undefined;
  /** Where the project number is looked up when `projectNumber` is unset (Google's Resource Manager). */
  resourceManagerUrl: string;
  /** A PEM file of CA certificates to trust besides the system's, for upstream TLS (a re-signing proxy). */
  extraCaCertificates: string | undefined;
  /** Scope lists fetched for the default account at start and kept fresh (e.g. `["cloud-platform"]`). */
  prefetchScopes: string[];
  logLevel: string;
  logFormat: LogFormat;
  /** How long an interactive consent may take. */
  loginTimeoutSeconds: number;
  /** Time limit for each keychain call. */
  keychainTimeoutMs: number;
  /** Time limit for each request to the OAuth server (all tries of one refresh together: 20 s). */
  upstreamTimeoutMs: number;
}

export interface Config {
  readonly settings: Readonly<Settings>;
  readonly sources: Readonly<Record<keyof Settings, Source>>;
  readonly configDir: string;
  readonly configFile: string;
  /** From TOKEND_FILE_PASSPHRASE only: a passphrase never sits in a config file. */
  readonly filePassphrase: string | undefined;
}

/** Environment variables that carry secrets: read once here, and never passed on to a child process. */
export const SECRET_ENVIRONMENT = ['TOKEND_FILE_PASSPHRASE'] as const;

/** `env` without tokend's secrets, for the processes tokend starts (the browser opener). */
export function withoutSecrets(env: Env): Record<string, string | undefined> {
  const copy = { ...env };
  for (const name of SECRET_ENVIRONMENT) delete copy[name];
  return copy;
}

export type Flags = Partial<Pick<Settings, 'socket' | 'store' | 'metadataPort' | 'logLevel' | 'logFormat'>>;

/** Where a value came from, as a person would find it, and how to fix a bad one. */
interface Origin {
  where: string;
  fix: string;
}
type Validator<T> = (value: unknown, origin: Origin) => T;

const str: Validator<string> = (value, { where, fix }) => {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${where} must be a non-empty string`, { hint: fix });
  return value;
};
const oneOf =
  <T extends string>(allowed: readonly T[]): Validator<T> =>
  (value, { where, fix }) => {
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      throw new ConfigError(`${where} must be one of ${allowed.join(', ')} (got ${JSON.stringify(value)})`, { hint: fix });
    }
    return value as T;
  };
const bool: Validator<boolean> = (value, { where, fix }) => {
  if (value === true || value === 'true' || value === '1') return true;
  if (value === false || value === 'false' || value === '0') return false;
  throw new ConfigError(`${where} must be true or false (got ${JSON.stringify(value)})`, { hint: fix });
};
const matching =
  (pattern: RegExp, what: string): Validator<string> =>
  (value, { where, fix }) => {
    if (typeof value !== 'string' || !pattern.test(value)) {
      throw new ConfigError(`${where} must be ${what} (got ${JSON.stringify(value)})`, { hint: fix });
    }
    return value;
  };
/** https, or plain http to this machine only (a private endpoint's relay, a test stand-in). */
const endpointUrl: Validator<string> = (value, { where, fix }) => {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  const loopback = url !== undefined && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url === undefined || !(url.protocol === 'https:' || (url.protocol === 'http:' && loopback))) {
    throw new ConfigError(`${where} must be an https:// URL (plain http only on loopback) (got ${JSON.stringify(value)})`, { hint: fix });
  }
  return url.toString();
};
const absolutePath: Validator<string> = (value, { where, fix }) => {
  if (typeof value !== 'string' || !isAbsolute(value)) throw new ConfigError(`${where} must be an absolute path (got ${JSON.stringify(value)})`, { hint: fix });
  return value;
};
const stringList: Validator<string[]> = (value, { where, fix }) => {
  if (!Array.isArray(value) || value.length > 16 || !value.every((item) => typeof item === 'string' && item.trim() !== '')) {
    throw new ConfigError(`${where} must be a list of at most 16 scope lists, e.g. ["cloud-platform", "bigquery,devstorage.read_only"] (got ${JSON.stringify(value)})`, { hint: fix });
  }
  return value as string[];
};
const int =
  (min: number, max: number): Validator<number> =>
  (value, { where, fix }) => {
    const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      throw new ConfigError(`${where} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`, { hint: fix });
    }
    return n;
  };

interface SettingSpec<K extends keyof Settings> {
  fileKey: string;
  env?: string;
  validate: Validator<NonNullable<Settings[K]>>;
  fallback: (env: Env) => Settings[K];
}

const specs: { [K in keyof Settings]: SettingSpec<K> } = {
  socket: { fileKey: 'socket', env: 'TOKEND_SOCKET', validate: str, fallback: (env) => defaultSocketPath(env) },
  store: { fileKey: 'store', env: 'TOKEND_STORE', validate: oneOf(STORE_SETTINGS), fallback: () => 'auto' },
  metadataPort: { fileKey: 'metadataPort', env: 'TOKEND_METADATA_PORT', validate: int(1, 65535), fallback: () => undefined },
  metadataIpv6: { fileKey: 'metadataIpv6', validate: bool, fallback: () => false },
  metadataAllowUnverifiedPeers: { fileKey: 'metadataAllowUnverifiedPeers', validate: bool, fallback: () => false },
  projectNumber: { fileKey: 'projectNumber', env: 'TOKEND_PROJECT_NUMBER', validate: matching(/^\d{1,20}$/, 'the project number (digits)'), fallback: () => undefined },
  extraCaCertificates: { fileKey: 'extraCaCertificates', env: 'TOKEND_EXTRA_CA_CERTIFICATES', validate: absolutePath, fallback: () => undefined },
  prefetchScopes: { fileKey: 'prefetchScopes', validate: stringList, fallback: () => [] },
  resourceManagerUrl: { fileKey: 'resourceManagerUrl', env: 'TOKEND_RESOURCE_MANAGER_URL', validate: endpointUrl, fallback: () => GOOGLE_RESOURCE_MANAGER },
  zone: { fileKey: 'zone', validate: matching(/^[a-z]+-[a-z]+\d+-[a-z]$/, 'a zone such as europe-west1-b'), fallback: () => undefined },
  logLevel: { fileKey: 'logLevel', env: 'TOKEND_LOG_LEVEL', validate: oneOf(LOG_LEVELS), fallback: () => 'info' },
  logFormat: { fileKey: 'logFormat', env: 'TOKEND_LOG_FORMAT', validate: oneOf(LOG_FORMATS), fallback: () => 'json' },
  loginTimeoutSeconds: { fileKey: 'loginTimeoutSeconds', validate: int(10, 3600), fallback: () => 300 },
  keychainTimeoutMs: { fileKey: 'keychainTimeoutMs', validate: int(100, 60_000), fallback: () => 5000 },
  upstreamTimeoutMs: { fileKey: 'upstreamTimeoutMs', validate: int(100, 20_000), fallback: () => 10_000 },
};

/** Every variable that changes what `tokend serve` does (secrets aside), for a service to be given the same. */
export const SETTINGS_ENVIRONMENT: readonly string[] = ['TOKEND_CONFIG_DIR', ...Object.values(specs).flatMap((spec) => (spec.env === undefined ? [] : [spec.env]))];

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    // Yours, not writable by others, not a link, not a FIFO: the config decides where tokens go.
    const raw = readPrivateFileSync(path, { kind: 'config' });
    if (raw === undefined) return {};
    text = raw.toString('utf8');
  } catch (error) {
    if (isTokendError(error)) throw error;
    throw new ConfigError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}`, {
      hint: `check that ${path} is a file of yours, or remove it`,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError(`${path} is not valid JSON`, { hint: `fix or remove ${path}` });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`${path} must hold a JSON object`, { hint: `fix or remove ${path}` });
  }
  const known = new Set(Object.values(specs).map((spec) => spec.fileKey));
  const unknown = Object.keys(parsed).filter((key) => !known.has(key));
  if (unknown.length > 0) {
    throw new ConfigError(`${path} has unknown setting${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`, {
      hint: `known settings: ${[...known].join(', ')}`,
    });
  }
  return parsed as Record<string, unknown>;
}

function flagName(setting: string): string {
  return `--${setting.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** How a person would name where a setting's value came from: `TOKEND_STORE=keychain`, `--store keychain`. */
export function describeOrigin(config: Config, name: keyof Settings): string {
  const value = String(config.settings[name]);
  const spec = specs[name];
  switch (config.sources[name]) {
    case 'flag':
      return `${flagName(name)} ${value}`;
    case 'env':
      return `${spec.env ?? name}=${value}`;
    case 'file':
      return `"${spec.fileKey}": ${JSON.stringify(config.settings[name])} in ${config.configFile}`;
    case 'default':
      return `the default (${value})`;
  }
}

/**
 * Settings from flags, then environment, then the config file, then defaults — validated once,
 * frozen, and with the source of each value kept for `status` and `doctor`.
 */
export function loadConfig(flags: Flags = {}, env: Env = process.env): Config {
  const configDir = resolve(defaultConfigDir(env));
  const configFile = join(configDir, 'config.json');
  const file = readConfigFile(configFile);
  const settings: Record<string, unknown> = {};
  const sources: Record<string, Source> = {};
  for (const [name, spec] of Object.entries(specs) as Array<[keyof Settings, SettingSpec<keyof Settings>]>) {
    const flag = flags[name as keyof Flags];
    const envValue = spec.env === undefined ? undefined : env[spec.env];
    // A bad value in the file is an error even while a flag or variable overrides it: it would
    // surprise the next start without them.
    const fileWhere = `"${spec.fileKey}" in ${configFile}`;
    const fromFile = spec.fileKey in file ? spec.validate(file[spec.fileKey], { where: fileWhere, fix: `fix or remove ${fileWhere}` }) : undefined;
    if (flag !== undefined) {
      const where = flagName(name);
      settings[name] = spec.validate(flag, { where, fix: `give ${where} a valid value (see \`tokend serve --help\`)` });
      sources[name] = 'flag';
    } else if (envValue !== undefined && envValue !== '') {
      const where = spec.env ?? name;
      settings[name] = spec.validate(envValue, { where, fix: `set ${where} to a valid value, or unset it: \`unset ${where}\`` });
      sources[name] = 'env';
    } else if (fromFile !== undefined) {
      settings[name] = fromFile;
      sources[name] = 'file';
    } else {
      settings[name] = spec.fallback(env);
      sources[name] = 'default';
    }
  }
  const socket = settings.socket as string;
  if (!isAbsolute(socket)) settings.socket = resolve(socket);
  const passphrase = env.TOKEND_FILE_PASSPHRASE;
  return Object.freeze({
    settings: Object.freeze(settings as unknown as Settings),
    sources: Object.freeze(sources as Record<keyof Settings, Source>),
    configDir,
    configFile,
    filePassphrase: passphrase === undefined || passphrase === '' ? undefined : passphrase,
  });
}
