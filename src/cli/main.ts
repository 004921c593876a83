import { ExitCode, UsageError } from '../errors.js';
import { pinNextTickShape } from '../tick-shape.js';
import { VERSION } from '../version.js';
import { reportFailure } from './exit.js';
import { line, processIo, type Io } from './io.js';

interface Command {
  summary: string;
  /** A function when the text depends on the environment (a default path). */
  usage: string | ((env: Io['env']) => string);
  run(argv: string[], io: Io): Promise<number>;
}

/**
 * Loaded when named: `tokend token` loads what a token request needs, not the daemon's fastify,
 * pino, google-auth-library and keychain binding (docs/performance.md).
 */
const commands: Record<string, () => Promise<Command>> = {
  serve: () => import('./commands/serve.js'),
  login: () => import('./commands/login.js'),
  token: () => import('./commands/token.js'),
  status: () => import('./commands/status.js'),
  default: () => import('./commands/default.js'),
  logout: () => import('./commands/logout.js'),
  env: () => import('./commands/env.js'),
  exec: () => import('./commands/exec.js'),
  store: () => import('./commands/store.js'),
  service: () => import('./commands/service.js'),
  doctor: () => import('./commands/doctor.js'),
};

async function help(): Promise<string> {
  const names = Object.keys(commands);
  const width = Math.max(...names.map((name) => name.length));
  const loaded = await Promise.all(names.map(async (name) => [name, await commands[name]!()] as const));
  const rows = loaded.map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`);
  return `tokend ${VERSION}: Google Cloud access tokens for local programs; the refresh token never leaves the daemon.

Usage: tokend <command> [flags]

Commands:
${rows.join('\n')}

Run \`tokend <command> --help\` for a command's flags.
Environment: TOKEND_SOCKET, TOKEND_CONFIG_DIR, TOKEND_STORE, TOKEND_FILE_PASSPHRASE, BROWSER (\`tokend env\` prints where the socket is).`;
}

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  pinNextTickShape();
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    line(name === undefined ? io.stderr : io.stdout, await help());
    return name === undefined ? ExitCode.usage : ExitCode.ok;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    line(io.stdout, VERSION);
    return ExitCode.ok;
  }
  // Own properties only: `tokend toString` is an unknown command, not Object.prototype.toString.
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  try {
    if (load === undefined) {
      throw new UsageError(`unknown command "${name}"`, { hint: `commands: ${Object.keys(commands).join(', ')}; see \`tokend --help\`` });
    }
    const command = await load();
    // What follows `--` belongs to another program (`tokend exec -- cmd --help`).
    const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    if (own.includes('--help') || own.includes('-h')) {
      line(io.stdout, typeof command.usage === 'string' ? command.usage : command.usage(io.env));
      return ExitCode.ok;
    }
    return await command.run(rest, io);
  } catch (error) {
    return reportFailure(io, error);
  }
}
