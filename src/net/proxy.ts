import { BlockList, isIP } from 'node:net';
import type { Env } from '../config/paths.js';
import { ConfigError } from '../errors.js';

/** Where upstream requests go, read from the environment as curl reads it. */
export interface ProxySettings {
  /** For http:// URLs: http_proxy, HTTP_PROXY, else all_proxy / ALL_PROXY. */
  http: URL | undefined;
  /** For https:// URLs: https_proxy, HTTPS_PROXY, else all_proxy / ALL_PROXY. */
  https: URL | undefined;
  /** no_proxy / NO_PROXY, as given, for messages. */
  noProxy: string;
  bypasses(url: URL): boolean;
}

/** The lowercase name first, as curl does; an empty value is unset. */
function variable(env: Env, name: string): { name: string; value: string } | undefined {
  for (const candidate of [name.toLowerCase(), name.toUpperCase()]) {
    const value = env[candidate]?.trim();
    if (value !== undefined && value !== '') return { name: candidate, value };
  }
  return undefined;
}

function proxyUrl(found: { name: string; value: string } | undefined): URL | undefined {
  if (found === undefined) return undefined;
  const fix = `set ${found.name} to http://HOST:PORT (or http://USER:PASSWORD@HOST:PORT), or unset it`;
  let url: URL;
  try {
    // curl takes a bare host:port as an http proxy.
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(found.value) ? found.value : `http://${found.value}`);
  } catch {
    // The value is not repeated: it may hold a password.
    throw new ConfigError(`${found.name} is not a proxy URL`, { hint: fix });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${found.name} names a ${url.protocol.replace(':', '')} proxy; tokend speaks to http and https proxies only`, { hint: fix });
  }
  return url;
}

/** `http://proxy.corp:3128`: a proxy as it may be shown, never with its user name or password. */
export function describeProxy(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

interface NoProxyRule {
  domain?: string;
  block?: BlockList;
}

function parseNoProxy(value: string, name: string): { all: boolean; rules: NoProxyRule[] } {
  const rules: NoProxyRule[] = [];
  let all = false;
  for (const raw of value.split(/[,\s]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') {
      all = true;
      continue;
    }
    const [address, bits] = entry.replace(/^\[(.*)\]$/, '$1').split('/');
    const family = isIP(address ?? '');
    if (family !== 0) {
      const block = new BlockList();
      const type = family === 4 ? 'ipv4' : 'ipv6';
      const prefix = bits === undefined ? undefined : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
      if (prefix !== undefined && !(prefix >= 0 && prefix <= (family === 4 ? 32 : 128))) {
        throw new ConfigError(`${name} has an address block with a bad prefix length: ${raw}`, { hint: `write it as ADDRESS/BITS, e.g. 10.0.0.0/8, in ${name}` });
      }
      if (prefix === undefined) block.addAddress(address!, type);
      else block.addSubnet(address!, prefix, type);
      rules.push({ block });
    } else {
      // curl: "example.com" and ".example.com" both match the domain and every host in it; no ports.
      rules.push({ domain: entry.replace(/^\*?\./, '').replace(/:\d+$/, '') });
    }
  }
  return { all, rules };
}

export function proxySettings(env: Env): ProxySettings {
  const all = proxyUrl(variable(env, 'all_proxy'));
  const http = proxyUrl(variable(env, 'http_proxy')) ?? all;
  const https = proxyUrl(variable(env, 'https_proxy')) ?? all;
  const noProxyVariable = variable(env, 'no_proxy');
  const noProxy = noProxyVariable?.value ?? '';
  const parsed = parseNoProxy(noProxy, noProxyVariable?.name ?? 'NO_PROXY');
  return {
    http,
    https,
    noProxy,
    bypasses(url) {
      if (parsed.all) return true;
      const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
      const family = isIP(host);
      return parsed.rules.some((rule) => {
        if (rule.block !== undefined) return family !== 0 && rule.block.check(host, family === 4 ? 'ipv4' : 'ipv6');
        return rule.domain !== undefined && (host === rule.domain || host.endsWith(`.${rule.domain}`));
      });
    },
  };
}

/** The proxy a request to `url` goes through, or undefined when it goes directly. */
export function proxyFor(url: URL, settings: ProxySettings): URL | undefined {
  const proxy = url.protocol === 'https:' ? settings.https : url.protocol === 'http:' ? settings.http : undefined;
  return proxy === undefined || settings.bypasses(url) ? undefined : proxy;
}
