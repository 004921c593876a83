import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { LoginOutcome, LoginStartResponse, TokendClient } from '../../client/socket-client.js';
import { ExitCode, InvalidClientSecretsError, LoginFailedError, LoginTimeoutError } from '../../errors.js';
import { parseFlags } from '../args.js';
import { openBrowser } from '../browser.js';
import { clientFor, socketOption } from '../context.js';
import { line, type Io } from '../io.js';

export const summary = 'one-time consent for an account, in the browser';
export const usage = `Usage: tokend login --client-secrets FILE [--scopes LIST] [--no-browser] [--login-hint EMAIL] [--json]

Starts a consent in the browser. The daemon receives the answer and keeps the refresh token; this
command only prints the account email and the scopes granted.

  --client-secrets FILE  Google OAuth client file of type "Desktop app"
  --scopes LIST          scopes to grant, comma or space separated (default: cloud-platform);
                         short names expand: bigquery → https://www.googleapis.com/auth/bigquery
  --no-browser           print the URL instead of opening a browser, then paste the address the
                         browser was sent to (for SSH sessions)
  --login-hint EMAIL     preselect the account on the consent screen
  --json                 print the result as JSON
  --socket PATH          the daemon's socket`;

const POLL_SECONDS = 25;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags('login', argv, {
    'client-secrets': { type: 'string' },
    scopes: { type: 'string' },
    'no-browser': { type: 'boolean' },
    'login-hint': { type: 'string' },
    json: { type: 'boolean' },
    ...socketOption,
  });
  const file = values['client-secrets'];
  if (file === undefined) {
    throw new InvalidClientSecretsError('--client-secrets FILE is required', {
      hint: 'create an OAuth client ID of type "Desktop app" in the Cloud Console and download its JSON (see README)',
    });
  }
  const path = resolve(file);
  let clientSecrets: string;
  try {
    clientSecrets = await readFile(path, 'utf8');
  } catch (error) {
    throw new InvalidClientSecretsError(`cannot read the client file ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'check the path given to --client-secrets',
    });
  }
  const client = clientFor(io, values.socket);
  const started = await client.startLogin({
    clientSecrets,
    clientFile: path,
    scopes: values.scopes ?? 'cloud-platform',
    ...(values['login-hint'] === undefined ? {} : { loginHint: values['login-hint'] }),
  });
  if (started.store.warning !== undefined) line(io.stderr, `warning: ${started.store.warning}`);
  // Ctrl-C abandons the sign-in in the daemon too, so its loopback listener closes at once.
  const abandon = () => {
    void client.cancelLogin(started.id).finally(() => process.exit(130));
  };
  process.once('SIGINT', abandon);
  try {
    return await finishLogin(io, client, started, values['no-browser'] === true, values.json === true);
  } finally {
    process.removeListener('SIGINT', abandon);
  }
}

async function finishLogin(
  io: Io,
  client: TokendClient,
  started: LoginStartResponse,
  noBrowser: boolean,
  json: boolean,
): Promise<number> {

  let outcome: LoginOutcome;
  if (noBrowser) {
    line(io.stderr, 'Open this URL in a browser on any machine and allow access:');
    line(io.stderr);
    line(io.stderr, `  ${started.authUrl}`);
    line(io.stderr);
    line(io.stderr, `The browser is then sent to ${started.redirectUri}?... — on another machine that page`);
    line(io.stderr, 'will not load. Copy the whole address from the address bar and paste it here:');
    outcome = await Promise.race([pasteBack(io, client, started.id), waitForLogin(client, started.id, started.expiresAt)]);
  } else {
    const opened = await openBrowser(started.authUrl, io.env);
    line(io.stderr, opened.opened ? `Opened the browser (${opened.how}) for consent.` : `Could not open a browser: ${opened.how}.`);
    line(io.stderr, 'If it did not open, visit this URL:');
    line(io.stderr, `  ${started.authUrl}`);
    line(io.stderr, 'Waiting for consent... (Ctrl-C to abandon)');
    outcome = await waitForLogin(client, started.id, started.expiresAt);
  }
  return report(io, outcome, started.store.description, json);
}

async function waitForLogin(client: TokendClient, id: string, expiresAt: string): Promise<LoginOutcome> {
  const deadline = Date.parse(expiresAt) + 5_000;
  while (Date.now() < deadline) {
    const state = await client.waitLogin(id, POLL_SECONDS);
    if (state.state === 'done') return state.outcome;
  }
  throw new LoginTimeoutError('no consent arrived in time', { hint: 'run `tokend login` again' });
}

async function pasteBack(io: Io, client: TokendClient, id: string): Promise<LoginOutcome> {
  const reader = createInterface({ input: io.stdin, terminal: false });
  try {
    for await (const input of reader) {
      const pasted = input.trim();
      if (pasted === '') continue;
      try {
        const state = await client.completeLogin(id, pasted);
        if (state.state === 'done') return state.outcome;
      } catch (error) {
        // A mangled paste leaves the sign-in open: say what was wrong and let the user paste again.
        if (!(error instanceof LoginFailedError) || !/pasted/.test(error.message)) throw error;
        line(io.stderr, `tokend: ${error.message}${error.hint === undefined ? '' : ` (${error.hint})`}; paste again:`);
      }
    }
  } finally {
    reader.close();
  }
  // stdin closed without a URL: keep waiting for the redirect to arrive by itself (e.g. ssh -L).
  return new Promise<LoginOutcome>(() => undefined);
}

function report(io: Io, outcome: LoginOutcome, storeDescription: string, json: boolean): number {
  if (json) {
    line(io.stdout, JSON.stringify({ ...outcome, store: storeDescription }, null, 2));
  } else {
    line(io.stdout, `Logged in as ${outcome.email}`);
    line(io.stdout, `Granted scopes: ${outcome.granted.join(' ')}`);
    line(io.stderr, `The refresh token is kept in: ${storeDescription}`);
  }
  if (outcome.notGranted.length === 0) return ExitCode.ok;
  line(io.stderr, `tokend: consent was partial: not granted: ${outcome.notGranted.join(' ')}`);
  line(io.stderr, 'hint: programs asking for these scopes will be refused; run `tokend login` again and leave them ticked');
  return ExitCode.scopeNotGranted;
}
