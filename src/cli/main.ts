import { ExitCode, UsageError } from '../errors.js';
import { VERSION } from '../version.js';
import * as defaultAccount from './commands/default.js';
import * as doctor from './commands/doctor.js';
import * as env from './commands/env.js';
import * as exec from './commands/exec.js';
import * as login from './commands/login.js';
import * as logout from './commands/logout.js';
import * as serve from './commands/serve.js';
import * as service from './commands/service.js';
import * as status from './commands/status.js';
import * as store from './commands/store.js';
import * as token from './commands/token.js';
import { reportFailure } from './exit.js';
import { line, processIo, type Io } from './io.js';

interface Command {
  summary: string;
  /** A function when the text depends on the environment (a default path). */
  usage: string | ((env: Io['env']) => string);
  run(argv: string[], io: Io): Promise<number>;
}

const commands: Record<string, Command> = { serve, login, token, status, default: defaultAccount, logout, env, exec, store, service, doctor };

function help(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const rows = Object.entries(commands).map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`);
  return `tokend ${VERSION}: Google Cloud access tokens for local programs; the refresh token never leaves the daemon.

Usage: tokend <command> [flags]

Commands:
${rows.join('\n')}

Run \`tokend <command> --help\` for a command's flags.
Environment: TOKEND_SOCKET, TOKEND_CONFIG_DIR, TOKEND_STORE, TOKEND_FILE_PASSPHRASE, BROWSER (\`tokend env\` prints where the socket is).`;
}

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    line(name === undefined ? io.stderr : io.stdout, help());
    return name === undefined ? ExitCode.usage : ExitCode.ok;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    line(io.stdout, VERSION);
    return ExitCode.ok;
  }
  // Own properties only: `tokend toString` is an unknown command, not Object.prototype.toString.
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  try {
    if (command === undefined) {
      throw new UsageError(`unknown command "${name}"`, { hint: `commands: ${Object.keys(commands).join(', ')}; see \`tokend --help\`` });
    }
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
