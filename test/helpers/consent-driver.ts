/**
 * Completes the consent that an authorization URL starts at the stand-in (test/helpers/oauth-standin.ts):
 * over HTTP with a cookie jar, or by clicking through the pages in a real Chromium.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';

export interface ConsentOptions {
  /** Scopes to leave ticked on the consent page; default all. Identity scopes are granted regardless. */
  grantScopes?: string[];
  /** Press Cancel instead of Allow: the redirect then carries error=access_denied. */
  deny?: boolean;
  /** For the whole consent; default 10 s. */
  timeoutMs?: number;
  /** What is typed into the login form: an email signs in as that account. Default: the stand-in's account. */
  login?: string;
}

export interface HttpConsentResult {
  /** Where the stand-in redirected: the client's http://127.0.0.1:PORT/... callback. */
  redirectUrl: string;
  /** The answer of the callback (redirects followed). */
  status: number;
  body: string;
}

export interface BrowserConsentOptions extends ConsentOptions {
  screenshotPath?: string;
}

export interface BrowserConsentResult {
  url: string;
  title: string;
  /** innerText of the final page's body. */
  text: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const LOGIN_NAME = 'test-user';

export const CHROMIUM_PATH = '/usr/bin/chromium';
// Without the networking flags Chromium keeps trying to reach Google's hosts.
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Consents over HTTP, then fetches the callback URL (tokend's loopback listener) like a browser would. */
export async function consentViaHttp(authUrl: string, options: ConsentOptions = {}): Promise<HttpConsentResult> {
  const signal = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const redirectUrl = await walkConsent(authUrl, options, signal);
  const response = await fetch(redirectUrl, { signal });
  return { redirectUrl, status: response.status, body: await response.text() };
}

/** Consents over HTTP and stops before the callback: the URL a user would paste back from a remote browser. */
export function obtainRedirectUrl(authUrl: string, options: ConsentOptions = {}): Promise<string> {
  return walkConsent(authUrl, options, AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS));
}

async function walkConsent(authUrl: string, options: ConsentOptions, signal: AbortSignal): Promise<string> {
  // tokend's start address (what a browser is opened with) redirects to the stand-in first.
  let standinOrigin = new URL(authUrl).origin;
  const cookies = new CookieJar();
  let request: { url: string; form?: URLSearchParams } = { url: authUrl };

  for (let hop = 0; hop < 20; hop++) {
    const response = await fetch(request.url, {
      method: request.form ? 'POST' : 'GET',
      body: request.form,
      headers: cookies.header(),
      redirect: 'manual',
      signal,
    });
    cookies.store(response.headers.getSetCookie());

    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location !== null) {
      await response.body?.cancel();
      const next = new URL(location, request.url);
      if (hop === 0 && new URL(request.url).pathname.startsWith('/start/')) standinOrigin = next.origin;
      else if (next.origin !== standinOrigin) return next.href;
      request = { url: next.href };
      continue;
    }

    const html = await response.text();
    if (response.status !== 200) {
      throw new Error(`stand-in answered ${response.status} at ${request.url}: ${textOf(html)}`);
    }
    request = submitForm(html, request.url, options);
  }
  throw new Error('consent did not reach the redirect URI within 20 hops');
}

/** Fills the login or consent form found in `html`, the way the user of ConsentOptions asked. */
function submitForm(html: string, pageUrl: string, options: ConsentOptions): { url: string; form: URLSearchParams } {
  const action = (id: string) => {
    const match = new RegExp(`<form id="${id}"[^>]*action="([^"]*)"`).exec(html);
    return match && new URL(decodeEntities(match[1]!), pageUrl).href;
  };

  const loginAction = action('login-form');
  if (loginAction !== null) return { url: loginAction, form: new URLSearchParams({ login: options.login ?? LOGIN_NAME }) };

  const consentAction = action('consent-form');
  if (consentAction === null) throw new Error(`neither a login nor a consent form at ${pageUrl}: ${textOf(html)}`);
  const form = new URLSearchParams({ decision: options.deny ? 'deny' : 'allow' });
  for (const [, value] of html.matchAll(/<input type="checkbox" name="scope" value="([^"]*)"/g)) {
    const scope = decodeEntities(value!);
    if (options.grantScopes === undefined || options.grantScopes.includes(scope)) form.append('scope', scope);
  }
  return { url: consentAction, form };
}

/** Enough of a cookie jar for one origin: names and values, with deletions honoured. */
class CookieJar {
  readonly #cookies = new Map<string, string>();

  store(setCookieHeaders: string[]): void {
    for (const header of setCookieHeaders) {
      const [pair = '', ...attributes] = header.split(';');
      const separator = pair.indexOf('=');
      const name = pair.slice(0, separator).trim();
      const value = pair.slice(separator + 1).trim();
      if (value === '' || attributes.some(isExpiry)) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header(): Record<string, string> {
    if (this.#cookies.size === 0) return {};
    return { cookie: [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ') };
  }
}

function isExpiry(attribute: string): boolean {
  const [key = '', value = ''] = attribute.split('=').map((s) => s.trim());
  if (key.toLowerCase() === 'max-age') return Number(value) <= 0;
  if (key.toLowerCase() === 'expires') return Date.parse(value) <= Date.now();
  return false;
}

function decodeEntities(text: string): string {
  return text
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function textOf(html: string): string {
  return decodeEntities(html.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim()).slice(0, 300);
}

/** Consents in a headless Chromium and returns the page the redirect led to (tokend's result page). */
export async function consentViaChromium(
  authUrl: string,
  options: BrowserConsentOptions = {},
): Promise<BrowserConsentResult> {
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // Loaded here because importing playwright-core takes a second, which HTTP-only suites need not pay.
  const { chromium } = await import('playwright-core');
  const profile = await mkdtemp(join(tmpdir(), 'tokend-chromium-'));
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      args: CHROMIUM_FLAGS,
      headless: true,
      timeout,
    });
    context.setDefaultTimeout(timeout);
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(authUrl);
    const standinOrigin = new URL(page.url()).origin; // after tokend's start address redirected
    await page.fill('#login', options.login ?? LOGIN_NAME);
    await page.click('#next');
    await page.waitForSelector('#consent-form');

    if (options.grantScopes !== undefined) {
      for (const box of await page.locator('input[name="scope"]').all()) {
        const scope = await box.getAttribute('value');
        if (scope !== null && !options.grantScopes.includes(scope)) await box.uncheck();
      }
    }
    await page.click(options.deny ? '#deny' : '#allow');
    await page.waitForURL((url) => url.origin !== standinOrigin, { waitUntil: 'load' });

    if (options.screenshotPath !== undefined) await page.screenshot({ path: options.screenshotPath });
    return { url: page.url(), title: await page.title(), text: await page.locator('body').innerText() };
  } finally {
    await context?.close();
    // Chromium's helper processes can still be writing into the profile for a moment after close()
    // resolves (seen in CI as ENOTEMPTY); rm retries exactly those races.
    await rm(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  }
}
