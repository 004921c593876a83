import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { LoginOutcome, LoginStartResponse, TokendClient } from '../../client/socket-client.js';
import { ExitCode, InvalidClientSecretsError, LoginFailedError, LoginTimeoutError, UsageError } from '../../errors.js';
import { readSmallFile, SmallFileError } from '../../fs/small-file.js';
import { parseFlags } from '../args.js';
import { openBrowser, whyNoBrowser } from '../browser.js';
import { clientFor, socketOption } from '../context.js';
import { line, type Io } from '../io.js';
import { apiScopeList } from '../scope-names.js';

export const summary = 'one-time consent for an account, in the browser';
/** A Google client file is under 1 KiB; it travels in a JSON body, which the daemon takes up to 64 KiB. */
const MAX_CLIENT_FILE_BYTES = 32 * 1024;
export const usage = `Usage: tokend login --client-secrets FILE [--scopes LIST] [--no-browser] [--login-hint EMAIL] [--default] [--json]

Starts a consent in the browser. The daemon receives the answer and keeps the refresh token; this
command only prints the account email and the scopes granted.

  --client-secrets FILE  Google OAuth client file of type "Desktop app"
  --scopes LIST          scopes to grant, comma or space separated (default: cloud-platform);
                         short names expand: bigquery → https://www.googleapis.com/auth/bigquery
  --no-browser           print the URL instead of opening a browser, then paste the address the
                         browser was sent to (for SSH sessions)
  --login-hint EMAIL     sign in as this account: it is preselected, and a consent given by another
                         account is refused
  --default              make this account the default one (the first account becomes the default
                         once you have seen which it is; a login never changes it otherwise)
  --no-default           do not make the first account the default
  --json                 print the result as JSON
  --socket PATH          the daemon's socket`;

const POLL_SECONDS = 25;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags('login', argv, {
    'client-secrets': { type: 'string' },
    scopes: { type: 'string' },
    'no-browser': { type: 'boolean' },
    'login-hint': { type: 'string' },
    default: { type: 'boolean' },
    'no-default': { type: 'boolean' },
    json: { type: 'boolean' },
    ...socketOption,
  });
  if (values.default === true && values['no-default'] === true) {
    throw new UsageError('--default and --no-default contradict each other', { hint: 'give one of them' });
  }
  const file = values['client-secrets'];
  if (file === undefined) {
    throw new InvalidClientSecretsError('--client-secrets FILE is required', {
      hint: 'create an OAuth client ID of type "Desktop app" in the Cloud Console and download its JSON (see README)',
    });
  }
  const path = resolve(file);
  let clientSecrets: string;
  try {
    clientSecrets = await readSmallFile(path, MAX_CLIENT_FILE_BYTES);
  } catch (error) {
    const problem = error instanceof SmallFileError ? error.problem : 'error';
    throw new InvalidClientSecretsError(`cannot read the client file ${path} (${problem === 'too large' ? 'larger than 32 KiB: not a client file' : problem})`, {
      hint: 'give --client-secrets the JSON file downloaded from the Cloud Console (APIs & Services > Credentials)',
    });
  }
  if (clientSecrets.trim() === '') {
    throw new InvalidClientSecretsError(`the client file ${path} is empty`, {
      hint: 'give --client-secrets the JSON file downloaded from the Cloud Console (APIs & Services > Credentials)',
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
    const outcome = await finishLogin(io, client, started, values['no-browser'] === true);
    const wantsDefault = values.default === true ? true : values['no-default'] === true ? false : undefined;
    return await report(io, client, outcome, started, { json: values.json === true, wantsDefault });
  } finally {
    process.removeListener('SIGINT', abandon);
  }
}

async function finishLogin(io: Io, client: TokendClient, started: LoginStartResponse, noBrowser: boolean): Promise<LoginOutcome> {
  if (noBrowser) return pasteFlow(io, client, started);
  const noBrowserHere = whyNoBrowser(io.env);
  if (noBrowserHere !== undefined) {
    line(io.stderr, `No browser can be opened here (${noBrowserHere}): finish the sign-in in a browser on any machine.`);
    return pasteFlow(io, client, started);
  }
  const opened = await openBrowser(started.startUrl, io.env);
  if (!opened.opened) {
    line(io.stderr, `Could not open a browser: ${opened.how}. Finish the sign-in in a browser on any machine.`);
    return pasteFlow(io, client, started);
  }
  line(io.stderr, `Opened the browser (${opened.how}) for consent. If it did not open, visit this URL:`);
  line(io.stderr, `  ${started.authUrl}`);
  line(io.stderr, 'Waiting for consent... (Ctrl-C to abandon)');
  try {
    return await waitForLogin(client, started);
  } catch (error) {
    if (!(error instanceof LoginTimeoutError)) throw error;
    throw new LoginTimeoutError(error.message, {
      hint: `${error.hint ?? `run \`${started.retryCommand}\``}; where the browser cannot reach this machine, add --no-browser`,
    });
  }
}

/**
 * The SSH flow: the URL is opened anywhere, and the address the browser was sent to is pasted here.
 * Whichever comes first ends the command: a pasted URL, or the redirect reaching the daemon by itself
 * (a browser on this host, ssh -L). The paste reader is closed either way, before anything else
 * reads the terminal.
 */
async function pasteFlow(io: Io, client: TokendClient, started: LoginStartResponse): Promise<LoginOutcome> {
  line(io.stderr, 'Open this URL in a browser on any machine and allow access:');
  line(io.stderr);
  line(io.stderr, `  ${started.authUrl}`);
  line(io.stderr);
  line(io.stderr, `The browser is then sent to ${started.redirectUri}?... — on another machine that page`);
  line(io.stderr, 'will not load. Copy the whole address from the address bar and paste it here:');
  const stopPaste = new AbortController();
  const waiting = waitForLogin(client, started);
  const pasted = pasteBack(io, client, started.id, stopPaste.signal);
  try {
    return await Promise.race([pasted.then((result) => result ?? waiting), waiting]);
  } finally {
    stopPaste.abort();
    await pasted.catch(() => undefined);
  }
}

async function waitForLogin(client: TokendClient, { id, expiresAt, retryCommand }: LoginStartResponse): Promise<LoginOutcome> {
  const deadline = Date.parse(expiresAt) + 5_000;
  while (Date.now() < deadline) {
    const state = await client.waitLogin(id, POLL_SECONDS);
    if (state.state === 'done') return state.outcome;
  }
  throw new LoginTimeoutError('no consent arrived in time', { hint: `run \`${retryCommand}\`` });
}

/** Reads pasted redirect URLs until one completes the sign-in; undefined when stdin ends or `stop` fires. */
async function pasteBack(io: Io, client: TokendClient, id: string, stop: AbortSignal): Promise<LoginOutcome | undefined> {
  const reader = createInterface({ input: io.stdin, terminal: false });
  const close = () => reader.close();
  stop.addEventListener('abort', close, { once: true });
  try {
    for await (const input of reader) {
      const pasted = input.trim();
      if (pasted === '') continue;
      try {
        const state = await client.completeLogin(id, pasted);
        if (state.state === 'done') return state.outcome;
      } catch (error) {
        if (stop.aborted) return undefined;
        // A mangled paste leaves the sign-in open: say what was wrong and let the user paste again.
        if (!(error instanceof LoginFailedError) || !/pasted/.test(error.message)) throw error;
        line(io.stderr, `tokend: ${error.message}`);
        if (error.hint !== undefined) line(io.stderr, `hint: ${error.hint}`);
        line(io.stderr, 'Paste the address again:');
      }
    }
  } finally {
    stop.removeEventListener('abort', close);
    reader.close();
  }
  // stdin closed without a URL: the redirect may still arrive by itself (e.g. ssh -L).
  return undefined;
}

async function report(
  io: Io,
  client: TokendClient,
  outcome: LoginOutcome,
  { store }: LoginStartResponse,
  options: { json: boolean; wantsDefault: boolean | undefined },
): Promise<number> {
  if (!options.json) {
    line(io.stdout, `Logged in as ${outcome.email}${outcome.isNew ? '' : ' (again: this consent replaces the previous one)'}`);
    line(io.stdout, `Granted scopes: ${apiScopeList(outcome.granted) || '(identity only)'}`);
    line(io.stderr, `The refresh token is kept in: ${store.description}`);
  }
  const defaultAccount = await settleDefault(io, client, outcome, options);
  if (options.json) line(io.stdout, JSON.stringify({ ...outcome, defaultAccount, store: store.description }, null, 2));
  if (outcome.notGranted.length === 0) return ExitCode.ok;
  line(io.stderr, `tokend: consent was partial: not granted: ${apiScopeList(outcome.notGranted)}`);
  line(io.stderr, `hint: programs asking for these scopes will be refused; run \`${outcome.retryCommand}\` and leave them ticked`);
  return ExitCode.scopeNotGranted;
}

/**
 * A login never changes the default account by itself. The first account becomes the default only
 * after the user has seen which account consented (asked on a terminal), or when `--default` says so.
 */
async function settleDefault(
  io: Io,
  client: TokendClient,
  outcome: LoginOutcome,
  options: { json: boolean; wantsDefault: boolean | undefined },
): Promise<string | null> {
  const current = outcome.defaultAccount;
  if (current === outcome.email) return current;
  const first = current === null;
  let make = options.wantsDefault ?? first;
  if (make && first && options.wantsDefault === undefined && isTerminal(io) && !options.json) {
    make = await confirm(io, `Make ${outcome.email} the default account (programs that name no account get its tokens)? [Y/n] `);
  }
  if (!make) {
    line(
      io.stderr,
      first
        ? `There is no default account; programs must name ${outcome.email}, or run \`tokend default ${outcome.email}\`.`
        : `The default account stays ${current}; to switch, run \`tokend default ${outcome.email}\`.`,
    );
    return current;
  }
  const changed = await client.setDefault(outcome.email);
  line(io.stderr, `${changed.email} is now the default account${changed.previous === undefined ? '' : ` (was ${changed.previous})`}.`);
  return changed.email;
}

function isTerminal(io: Io): boolean {
  return (io.stdin as { isTTY?: boolean }).isTTY === true && (io.stderr as { isTTY?: boolean }).isTTY === true;
}

async function confirm(io: Io, question: string): Promise<boolean> {
  const reader = createInterface({ input: io.stdin, output: io.stderr, terminal: false });
  try {
    const answer = await new Promise<string | undefined>((resolve) => {
      reader.once('line', resolve);
      reader.once('close', () => resolve(undefined));
      io.stderr.write(question);
      io.stdin.resume();
    });
    return answer !== undefined && !/^\s*n/i.test(answer);
  } finally {
    reader.close();
  }
}
