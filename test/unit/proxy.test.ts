/** Which proxy an upstream URL goes through, read from the environment as curl reads it. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { describeProxy, proxyFor, proxySettings } from '../../src/net/proxy.js';

const route = (env: Record<string, string>, url: string) => proxyFor(new URL(url), proxySettings(env))?.href;

describe('proxy settings', () => {
  test('https URLs take HTTPS_PROXY, http URLs HTTP_PROXY; neither falls back to the other, both to ALL_PROXY', () => {
    const env = { HTTPS_PROXY: 'http://secure:1', HTTP_PROXY: 'http://plain:2' };
    assert.equal(route(env, 'https://oauth2.googleapis.com/token'), 'http://secure:1/');
    assert.equal(route(env, 'http://127.0.0.1:9/token'), 'http://plain:2/');
    assert.equal(route({ HTTP_PROXY: 'http://plain:2' }, 'https://oauth2.googleapis.com/token'), undefined, 'curl does not send https through http_proxy');
    assert.equal(route({ ALL_PROXY: 'http://any:3' }, 'https://oauth2.googleapis.com/token'), 'http://any:3/');
    assert.equal(route({ ALL_PROXY: 'http://any:3', HTTPS_PROXY: 'http://secure:1' }, 'https://a.example/'), 'http://secure:1/');
  });

  test('the lowercase name wins over the uppercase one; an empty value is unset; a bare host:port is an http proxy', () => {
    assert.equal(route({ https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:2' }, 'https://a.example/'), 'http://lower:1/');
    assert.equal(route({ https_proxy: '', HTTPS_PROXY: 'http://upper:2' }, 'https://a.example/'), 'http://upper:2/');
    assert.equal(route({ HTTPS_PROXY: 'proxy.corp:3128' }, 'https://a.example/'), 'http://proxy.corp:3128/');
  });

  test('credentials are kept for the proxy but never shown', () => {
    const proxy = proxyFor(new URL('https://a.example/'), proxySettings({ HTTPS_PROXY: 'http://alice:s3cret@proxy.corp:3128' }))!;
    assert.equal(proxy.password, 's3cret');
    assert.equal(describeProxy(proxy), 'http://proxy.corp:3128');
  });

  test('a bad proxy value is a config error that does not repeat it (it may hold a password)', () => {
    assert.throws(() => proxySettings({ HTTPS_PROXY: 'http://alice:s3cret@[bad' }), (error: unknown) => error instanceof ConfigError && error.message === 'HTTPS_PROXY is not a proxy URL' && !(error.hint ?? '').includes('s3cret'));
    assert.throws(() => proxySettings({ https_proxy: 'socks5://proxy:1080' }), /https_proxy names a socks5 proxy; tokend speaks to http and https proxies only/);
  });
});

describe('NO_PROXY', () => {
  const P = { HTTPS_PROXY: 'http://p:1', HTTP_PROXY: 'http://p:1' };
  const bypassed = (noProxy: string, url: string) => route({ ...P, NO_PROXY: noProxy }, url) === undefined;

  test('a name matches itself and every host under it, with or without a leading dot, in any case', () => {
    assert.equal(bypassed('googleapis.com', 'https://oauth2.googleapis.com/token'), true);
    assert.equal(bypassed('.googleapis.com', 'https://oauth2.googleapis.com/token'), true);
    assert.equal(bypassed('GoogleApis.com', 'https://googleapis.com/'), true);
    assert.equal(bypassed('googleapis.com', 'https://notgoogleapis.com/'), false, 'a suffix is not a domain');
    assert.equal(bypassed('oauth2.googleapis.com', 'https://googleapis.com/'), false);
  });

  test('addresses, CIDR blocks, IPv6 in brackets, several entries, and * for everything', () => {
    assert.equal(bypassed('127.0.0.1', 'http://127.0.0.1:8080/token'), true);
    assert.equal(bypassed('10.0.0.0/8', 'https://10.1.2.3/'), true);
    assert.equal(bypassed('10.0.0.0/8', 'https://11.1.2.3/'), false);
    assert.equal(bypassed('[::1]', 'http://[::1]:9/'), true);
    assert.equal(bypassed('::1', 'http://[::1]:9/'), true);
    assert.equal(bypassed('example.org, localhost ,127.0.0.1', 'http://localhost:9/'), true);
    assert.equal(bypassed('*', 'https://oauth2.googleapis.com/'), true);
    assert.equal(bypassed('', 'http://127.0.0.1:9/'), false, 'loopback is proxied unless listed, as curl does');
    assert.equal(route({ ...P, no_proxy: 'a.example', NO_PROXY: '*' }, 'https://b.example/'), 'http://p:1/', 'no_proxy wins over NO_PROXY');
  });

  test('an address block with a bad prefix is a config error naming the variable, not a crash or a bypass of everything', () => {
    for (const entry of ['10.0.0.0/', '10.0.0.0/33', '10.0.0.0/x', '::1/129']) {
      assert.throws(() => proxySettings({ ...P, NO_PROXY: `example.org,${entry}` }), (error: unknown) => error instanceof ConfigError && error.message === `NO_PROXY has an address block with a bad prefix length: ${entry}`, entry);
    }
  });
});
