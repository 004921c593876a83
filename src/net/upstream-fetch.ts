import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Dispatcher, fetch as undiciFetchType, ProxyAgent as ProxyAgentType } from 'undici';
import type { Env } from '../config/paths.js';
import { ConfigError } from '../errors.js';
import { describeProxy, proxyFor, proxySettings, type ProxySettings } from './proxy.js';

/**
 * A failed upstream request, with what can be said about it safely: the route (direct, or which proxy,
 * without its credentials) and the reason as an error code, never a message that might echo a URL.
 */
export class UpstreamConnectError extends Error {
  constructor(
    readonly proxy: string | undefined,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(proxy === undefined ? reason : `${reason} through the proxy ${proxy}`, options);
    this.name = 'UpstreamConnectError';
  }

  /** ` through the proxy http://proxy:3128 (ECONNREFUSED)`, for "the OAuth server at HOST could not be reached…". */
  get route(): string {
    return `${this.proxy === undefined ? '' : ` through the proxy ${this.proxy}`} (${this.reason})`;
  }

  /** What to do about it, ready to paste where there is a command. */
  hint(host: string): string {
    if (CERTIFICATE_ERRORS.test(this.reason)) {
      return `${host}'s certificate is not trusted here: if a proxy re-signs TLS, give its CA certificate as "extraCaCertificates": "/path/to/ca.pem" in the config file (or NODE_EXTRA_CA_CERTS for the daemon)`;
    }
    if (this.proxy !== undefined && this.reason.includes('407')) {
      return `give the proxy's user name and password in its URL: HTTPS_PROXY=http://USER:PASSWORD@${this.proxy.replace(/^\w+:\/\//, '')} (for the daemon's environment)`;
    }
    if (this.proxy !== undefined) {
      return `check that the proxy ${this.proxy} is running and lets you through, or go around it for this host: NO_PROXY=${host.replace(/:\d+$/, '')}`;
    }
    return 'check your network connection';
  }
}

const CERTIFICATE_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET)|ALTNAME/;

function reasonOf(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    // undici: `Proxy response (407) !== 200 when HTTP Tunneling`, `Proxy Authentication Required (407)`.
    const proxyStatus = /^Proxy\b.*\((\d{3})\)/.exec(current.message)?.[1];
    if (proxyStatus !== undefined) return proxyStatus === '407' ? 'the proxy wants credentials: HTTP 407' : `the proxy answered HTTP ${proxyStatus}`;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_ABORTED') return code;
    current = current.cause;
  }
  return 'connection failed';
}

export interface UpstreamHttp {
  fetch: typeof fetch;
  proxies: ProxySettings;
  /** How a request to `url` travels, for logs and `doctor`: `directly` or `through the proxy http://p:3128`. */
  route(url: string | URL): string;
  close(): Promise<void>;
}

export interface UpstreamHttpOptions {
  env: Env;
  /** A PEM file of CA certificates trusted besides the system's (a TLS-inspecting proxy's). */
  extraCaCertificates?: string | undefined;
}

function trustedCertificates(options: UpstreamHttpOptions): string[] | undefined {
  // Without a file of our own, Node's default (which already holds NODE_EXTRA_CA_CERTS) is used as is.
  if (options.extraCaCertificates === undefined) return undefined;
  // Giving `ca` replaces Node's default, so NODE_EXTRA_CA_CERTS is read again here.
  const files = [options.env.NODE_EXTRA_CA_CERTS, options.extraCaCertificates].filter((file): file is string => file !== undefined && file !== '');
  const extra = files.map((file) => {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`cannot read the CA certificates in ${file} (${(error as NodeJS.ErrnoException).code ?? 'unknown error'})`, {
        hint: `check "extraCaCertificates" in the config file (a PEM file of yours), or remove it`,
      });
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new ConfigError(`${file} holds no PEM certificate`, { hint: 'give a file with -----BEGIN CERTIFICATE----- blocks' });
    }
    return pem;
  });
  return [...rootCertificates, ...extra];
}

/** What upstreamHttp takes from undici once it is loaded, and the direct agent made with it. */
interface LoadedUndici {
  undiciFetch: typeof undiciFetchType;
  ProxyAgent: typeof ProxyAgentType;
  direct: Dispatcher;
}

/**
 * fetch for every upstream call (token, revoke, Resource Manager), through the proxy the environment
 * names for the URL, curl's way, by undici's proxy agent. Node's own fetch ignores these variables.
 * The settings (proxies, CA files) are checked at once; undici itself (about 75 ms) is loaded at the
 * first upstream call, so neither a CLI command that imports this module nor the daemon's start waits for it.
 */
export function upstreamHttp(options: UpstreamHttpOptions): UpstreamHttp {
  const proxies = proxySettings(options.env);
  const ca = trustedCertificates(options);
  const tls = ca === undefined ? {} : { ca };
  const viaProxy = new Map<string, Dispatcher>();
  let loaded: Promise<LoadedUndici> | undefined;
  const undici = () =>
    (loaded ??= import('undici').then(({ Agent, ProxyAgent, fetch: undiciFetch }) => ({ undiciFetch, ProxyAgent, direct: new Agent({ connect: tls }) })));
  const dispatcherFor = (proxy: URL | undefined, { ProxyAgent, direct }: LoadedUndici): Dispatcher => {
    if (proxy === undefined) return direct;
    let agent = viaProxy.get(proxy.href);
    if (agent === undefined) {
      // http:// targets as curl sends them (the absolute URL to the proxy); https:// ones tunnelled with CONNECT.
      agent = new ProxyAgent({ uri: proxy.href, proxyTunnel: false, requestTls: tls, proxyTls: tls });
      viaProxy.set(proxy.href, agent);
    }
    return agent;
  };
  const fetchThrough = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    const proxy = proxyFor(url, proxies);
    const shown = proxy === undefined ? undefined : describeProxy(proxy);
    const loadedUndici = await undici();
    const dispatcher = dispatcherFor(proxy, loadedUndici);
    let response: Response;
    try {
      response = await loadedUndici.undiciFetch(url, { ...(init as object), dispatcher });
    } catch (error) {
      if (init?.signal?.aborted === true) throw error;
      throw new UpstreamConnectError(shown, reasonOf(error), { cause: error });
    }
    // A forwarding proxy answers for the origin: its refusal must not read as the OAuth server's.
    if (shown !== undefined && response.status === 407) {
      await response.body?.cancel();
      throw new UpstreamConnectError(shown, 'the proxy wants credentials: HTTP 407');
    }
    return response;
  };
  return {
    fetch: fetchThrough,
    proxies,
    route(url) {
      const proxy = proxyFor(new URL(url), proxies);
      return proxy === undefined ? 'directly' : `through the proxy ${describeProxy(proxy)}`;
    },
    async close() {
      if (loaded === undefined) return;
      const { direct } = await loaded;
      await Promise.all([direct.close(), ...[...viaProxy.values()].map((agent) => agent.close())]);
    },
  };
}
