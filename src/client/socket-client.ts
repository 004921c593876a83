import { daemonLogLocation } from '../log-location.js';
import { lstat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { loadConfig } from '../config/config.js';
import { DaemonUnreachableError, errorFromJson, isTokendError, UpstreamUnavailableError } from '../errors.js';
import { checkOwner, ensurePrivateDir } from '../fs/private-path.js';
import type { DefaultChanged, LoginOutcome, LoginStartResponse, LoginState, StoreMoved, TokenResponse, UpstreamProbe } from '../protocol.js';
import { exchange, type ExchangeError } from './unix-http.js';

export interface SocketClientOptions {
  /** Default: TOKEND_SOCKET, the config file, else the default path, as for the CLI (`tokend env` prints it). */
  socketPath?: string;
  /** Per request; long-polls add their own wait to it. */
  timeoutMs?: number;
}

export type { LoginOutcome, LoginStartResponse, LoginState, TokenResponse };

const MAX_RESPONSE_BYTES = 1024 * 1024;

function startHint(socketPath: string): string {
  return `start it with \`tokend serve\` (it listens on ${socketPath})`;
}

/**
 * A client for the daemon's Unix socket: the CLI uses it, and so can any program. Errors the daemon
 * reports come back as the same error classes; a daemon that is not there is DaemonUnreachableError.
 */
export class TokendClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;

  constructor(options: SocketClientOptions = {}) {
    this.socketPath = options.socketPath ?? loadConfig({}, process.env).settings.socket;
    // Above the daemon's own worst case for a refresh (three tries at the upstream's time limit).
    this.timeoutMs = options.timeoutMs ?? 45_000;
  }

  getToken(options: { scopes?: string; account?: string } = {}): Promise<TokenResponse> {
    const query = new URLSearchParams();
    if (options.scopes !== undefined) query.set('scopes', options.scopes);
    if (options.account !== undefined) query.set('account', options.account);
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    return this.request<TokenResponse>('GET', `/tokend/v1/token${suffix}`);
  }

  status(): Promise<Record<string, unknown>> {
    return this.request('GET', '/tokend/v1/status');
  }

  /** Each OAuth endpoint as the daemon reaches it, asked now. */
  probeUpstream(): Promise<{ probes: UpstreamProbe[] }> {
    // The daemon waits up to 3 s for each endpoint: this waits longer, so its answer arrives.
    return this.request('GET', '/tokend/v1/upstream', undefined, 5_000);
  }

  startLogin(body: { clientSecrets: string; clientFile?: string; scopes?: string; loginHint?: string }) {
    return this.request<LoginStartResponse>('POST', '/tokend/v1/logins', body);
  }

  waitLogin(id: string, waitSeconds: number): Promise<LoginState> {
    return this.request<LoginState>('GET', `/tokend/v1/logins/${encodeURIComponent(id)}?wait=${waitSeconds}`, undefined, waitSeconds * 1000);
  }

  completeLogin(id: string, url: string): Promise<LoginState> {
    return this.request<LoginState>('POST', `/tokend/v1/logins/${encodeURIComponent(id)}/redirect`, { url });
  }

  cancelLogin(id: string): Promise<unknown> {
    return this.request('DELETE', `/tokend/v1/logins/${encodeURIComponent(id)}`);
  }

  /** Moves every account to the other store; can take a while with a slow keychain. */
  migrateStore(to: 'keychain' | 'file'): Promise<StoreMoved> {
    return this.request('POST', '/tokend/v1/store/migrate', { to });
  }

  setDefault(account: string): Promise<DefaultChanged> {
    return this.request('PUT', '/tokend/v1/default', { account });
  }

  logout(body: { account?: string; revoke?: boolean }): Promise<{ email: string; revoked: boolean }> {
    return this.request('POST', '/tokend/v1/logout', body);
  }

  /**
   * Before every connection, never cached: the socket's directory must exist, be a real directory of
   * ours that only we can enter (0700), and the socket must be ours. Otherwise whoever created them
   * would receive our token requests, and answer them with tokens of their choosing.
   */
  private async verifyOwner(): Promise<void> {
    if (process.getuid === undefined) return;
    const dir = dirname(this.socketPath);
    try {
      await ensurePrivateDir(dir, { create: false, others: 'refuse', what: 'socket' });
    } catch (error) {
      if (isTokendError(error) && error.details?.missing === true) {
        throw new DaemonUnreachableError(`no tokend is running on ${this.socketPath} (${dir} does not exist)`, { hint: startHint(this.socketPath) });
      }
      throw new DaemonUnreachableError(`refusing to talk to ${this.socketPath}: ${isTokendError(error) ? error.message : 'its directory cannot be checked'}`, {
        hint: isTokendError(error) && error.hint !== undefined ? error.hint : 'point TOKEND_SOCKET at a socket of your own',
      });
    }
    let info;
    try {
      info = await lstat(this.socketPath);
    } catch {
      return; // missing: the connection attempt reports it
    }
    try {
      if (!info.isSocket()) throw new DaemonUnreachableError(`${this.socketPath} is not a socket`, { hint: 'point TOKEND_SOCKET at your daemon\'s socket' });
      checkOwner(info, this.socketPath);
    } catch (error) {
      throw new DaemonUnreachableError(`refusing to talk to ${this.socketPath}: ${(error as Error).message}`, {
        hint: 'point TOKEND_SOCKET at a socket of your own, and start your daemon with `tokend serve`',
      });
    }
  }

  async request<T>(method: string, path: string, body?: unknown, extraTimeoutMs = 0): Promise<T> {
    await this.verifyOwner();
    return this.send<T>(method, path, body, extraTimeoutMs);
  }

  private async send<T>(method: string, path: string, body: unknown, extraTimeoutMs: number): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const timeoutMs = this.timeoutMs + extraTimeoutMs;
    let answer;
    try {
      answer = await exchange(
        this.socketPath,
        { method, path, headers: { 'metadata-flavor': 'Google', ...(payload === undefined ? {} : { 'content-type': 'application/json' }) }, ...(payload === undefined ? {} : { body: payload }) },
        { timeoutMs, maxBytes: MAX_RESPONSE_BYTES },
      );
    } catch (error) {
      throw this.failure(error as ExchangeError, timeoutMs);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.body.toString('utf8'));
    } catch {
      throw this.notTokend();
    }
    if (answer.status >= 200 && answer.status < 300) return parsed as T;
    throw errorFromJson(parsed, answer.status);
  }

  private notTokend(): DaemonUnreachableError {
    return new DaemonUnreachableError(`the process on ${this.socketPath} did not answer like tokend`, {
      hint: 'another program serves this socket: stop it, or point TOKEND_SOCKET at your tokend',
    });
  }

  private failure(error: ExchangeError, timeoutMs: number): Error {
    switch (error.code) {
      case 'timeout':
        return new UpstreamUnavailableError(`tokend did not answer within ${Math.round(timeoutMs / 1000)} s`, { hint: `check ${daemonLogLocation()}` });
      case 'malformed':
      case 'too-large':
        return this.notTokend();
      case 'ENOENT':
      case 'ECONNREFUSED':
        return new DaemonUnreachableError(`no tokend is running on ${this.socketPath}`, { hint: startHint(this.socketPath) });
      case 'EACCES':
        return new DaemonUnreachableError(`permission denied on ${this.socketPath}: it belongs to another user`, {
          hint: 'run tokend as yourself, or point TOKEND_SOCKET at your own daemon',
        });
      default:
        return new DaemonUnreachableError(`cannot talk to tokend on ${this.socketPath} (${error.code})`, { hint: startHint(this.socketPath) });
    }
  }
}
