import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/**
 * A private, headless Secret Service for tests: a temporary HOME and XDG directories, a session
 * D-Bus daemon, and gnome-keyring with an unlocked login keyring. Nothing touches the real user's
 * keyring or bus.
 */
export interface KeyringSession {
  /** process.env plus the session's HOME, XDG_* and DBUS_SESSION_BUS_ADDRESS: give it to children. */
  env: NodeJS.ProcessEnv;
  /** The session's own variables only. */
  vars: Record<string, string>;
  busAddress: string;
  /**
   * Sets the session's variables on process.env, so in-process @napi-rs/keyring uses this bus.
   * Call before the first keyring use. Returns a function that restores the previous values.
   */
  applyToProcess(): () => void;
  /** Every item stored under attribute `service` (as @napi-rs/keyring stores it), via secret-tool. */
  search(service: string): Promise<Array<{ account: string; secret: string }>>;
  /** The pid of the process that owns org.freedesktop.secrets on this bus. */
  secretServicePid(): Promise<number>;
  /** Locks the login keyring with the Secret Service's own Lock call (secret-tool's lock waits for a prompt that never comes here). */
  lock(): Promise<void>;
  /** Unlocks it again with its password, as a login does (a new gnome-keyring takes over). */
  unlock(): Promise<void>;
  /** Kills gnome-keyring and the bus; removes the temporary directories. Idempotent. */
  stop(): Promise<void>;
}

const SECRETS_NAME = 'org.freedesktop.secrets';
const READY_TIMEOUT_MS = 5000;
const KEYRING_PASSWORD = 'tokend-test-keyring';

export async function startKeyringSession(): Promise<KeyringSession> {
  const root = mkdtempSync(join(tmpdir(), 'tokend-keyring-'));
  const vars: Record<string, string> = {
    HOME: join(root, 'home'),
    XDG_RUNTIME_DIR: join(root, 'run'),
    XDG_DATA_HOME: join(root, 'data'),
    XDG_CONFIG_HOME: join(root, 'config'),
    XDG_CACHE_HOME: join(root, 'cache'),
  };
  for (const dir of Object.values(vars)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(vars.XDG_RUNTIME_DIR!, 0o700);

  // Services the bus activates inherit its environment, so it must start with the temporary dirs.
  const baseEnv: NodeJS.ProcessEnv = { ...process.env, ...vars };
  delete baseEnv.DBUS_SESSION_BUS_ADDRESS;
  delete baseEnv.GNOME_KEYRING_CONTROL;

  const pids: number[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const pid of pids.reverse()) {
      try {
        process.kill(pid, 'SIGCONT'); // in case a test stopped it
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    rmSync(root, { recursive: true, force: true });
  };

  try {
    const { stdout } = await execFileAsync(
      'dbus-daemon',
      ['--session', '--fork', '--print-address=1', '--print-pid=1'],
      { env: baseEnv, timeout: READY_TIMEOUT_MS },
    );
    const [address, pidText] = stdout.trim().split('\n');
    const busPid = Number(pidText);
    if (address === undefined || !address.startsWith('unix:') || !Number.isInteger(busPid)) {
      throw new Error(`dbus-daemon printed an unexpected address/pid: ${JSON.stringify(stdout)}`);
    }
    pids.push(busPid);
    vars.DBUS_SESSION_BUS_ADDRESS = address;
    const env: NodeJS.ProcessEnv = { ...baseEnv, DBUS_SESSION_BUS_ADDRESS: address };

    await unlockKeyring(env);
    await waitForOwner(env);
    const keyringPid = await ownerPid(env);
    pids.push(keyringPid);

    return {
      env,
      vars: { ...vars },
      busAddress: address,
      applyToProcess() {
        const previous = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
        Object.assign(process.env, vars);
        return () => {
          for (const [k, v] of Object.entries(previous)) {
            if (v === undefined) delete process.env[k];
            else process.env[k] = v;
          }
        };
      },
      search: (service) => secretToolSearch(env, service),
      lock: async () => {
        await execFileAsync(
          'dbus-send',
          ['--session', '--dest=org.freedesktop.secrets', '--print-reply', '/org/freedesktop/secrets', 'org.freedesktop.Secret.Service.Lock', 'array:objpath:/org/freedesktop/secrets/collection/login'],
          { env, timeout: READY_TIMEOUT_MS },
        );
      },
      // gnome-keyring's --unlock does not unlock a running instance, and its unlock call needs a
      // session on one D-Bus connection: a fresh instance takes the name over with the keyring open,
      // as a new login would; the items persist on disk.
      unlock: async () => {
        await unlockKeyring(env, ['--replace']);
        await waitForOwner(env);
        pids.push(await ownerPid(env));
      },
      secretServicePid: () => ownerPid(env),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * An environment in which no Secret Service can be reached: the session bus address points at a
 * socket that does not exist (so nothing is auto-launched either).
 */
export function noSecretServiceEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(tmpdir(), `tokend-no-bus-${process.pid}`, 'bus')}`,
  };
  delete env.GNOME_KEYRING_CONTROL;
  return env;
}

/** `gnome-keyring-daemon --unlock` creates and unlocks the login keyring; it daemonizes. */
async function unlockKeyring(env: NodeJS.ProcessEnv, extra: string[] = []): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('gnome-keyring-daemon', [...extra, '--unlock', '--components=secrets'], {
      env,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('gnome-keyring-daemon --unlock did not return'));
    }, READY_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`gnome-keyring-daemon --unlock exited with ${code}`));
    });
    child.stdin.end(KEYRING_PASSWORD);
  });
}

async function busCall(env: NodeJS.ProcessEnv, method: string): Promise<string> {
  const { stdout } = await execFileAsync(
    'dbus-send',
    [
      '--session',
      '--print-reply',
      '--dest=org.freedesktop.DBus',
      '/org/freedesktop/DBus',
      `org.freedesktop.DBus.${method}`,
      `string:${SECRETS_NAME}`,
    ],
    { env, timeout: READY_TIMEOUT_MS },
  );
  return stdout;
}

async function waitForOwner(env: NodeJS.ProcessEnv): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (/boolean true/.test(await busCall(env, 'NameHasOwner'))) return;
    if (Date.now() > deadline) throw new Error(`${SECRETS_NAME} got no owner within ${READY_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function ownerPid(env: NodeJS.ProcessEnv): Promise<number> {
  const match = /uint32 (\d+)/.exec(await busCall(env, 'GetConnectionUnixProcessID'));
  if (match === null) throw new Error(`no pid for ${SECRETS_NAME}`);
  return Number(match[1]);
}

/**
 * secret-tool prints each item's path, label and secret on stdout and its attributes on stderr, in
 * the same item order; the two are zipped by position. @napi-rs/keyring stores the attributes
 * `service` and `username`.
 */
async function secretToolSearch(
  env: NodeJS.ProcessEnv,
  service: string,
): Promise<Array<{ account: string; secret: string }>> {
  let stdout: string;
  let stderr: string;
  try {
    ({ stdout, stderr } = await execFileAsync('secret-tool', ['search', '--all', 'service', service], {
      env,
      timeout: READY_TIMEOUT_MS,
    }));
  } catch (err) {
    // secret-tool exits 1 when nothing matches
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (e.code === 1 && (e.stdout ?? '') === '') return [];
    throw err;
  }
  const secrets = [...stdout.matchAll(/^secret = (.*)$/gm)].map((m) => m[1]!);
  const accounts = [...stderr.matchAll(/^attribute\.username = (.*)$/gm)].map((m) => m[1]!);
  if (secrets.length !== accounts.length) {
    throw new Error(`secret-tool listed ${secrets.length} secrets but ${accounts.length} usernames`);
  }
  return secrets.map((secret, i) => ({ account: accounts[i]!, secret }));
}
