import { loadConfig } from '../../config/config.js';
import { ExitCode } from '../../errors.js';
import { launchdManager } from '../../service/launchd-manager.js';
import { commandRunner, managerEnvironment } from '../../service/run-command.js';
import { systemdManager } from '../../service/systemd-manager.js';
import { parseFlags } from '../args.js';
import { runChecks } from '../doctor-checks.js';
import { line, type Io } from '../io.js';

export const summary = 'check the installation and say how to fix what is wrong';
export const usage = `Usage: tokend doctor [--json]

Checks, one line each (ok, warn or fail), with the command that fixes each problem: the socket
directory, the daemon and its version, the keychain, every account, the metadata listener and this
shell's variables, the project number, what would make Google's clients pass tokend by (a key file,
gcloud's own credentials, gcloud's cached "not on GCE"), each OAuth endpoint as the daemon reaches it
(its proxy included) and the clock against it, and the service. Exits 1 when a check fails.

  --json  print the checks as JSON`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags('doctor', argv, { json: { type: 'boolean' } });
  const config = loadConfig({}, io.env);
  const manager = process.platform === 'darwin' ? launchdManager() : systemdManager(io.env);
  const checks = await runChecks({ config, env: io.env, manager, run: commandRunner(managerEnvironment(io.env)) });
  const failed = checks.some((check) => check.status === 'fail');
  if (values.json === true) {
    line(io.stdout, JSON.stringify({ ok: !failed, checks }, null, 2));
  } else {
    const width = Math.max(...checks.map((check) => check.id.length));
    for (const check of checks) {
      line(io.stdout, `${check.status.padEnd(4)}  ${check.id.padEnd(width)}  ${check.summary}`);
      if (check.fix !== undefined && check.status !== 'ok') line(io.stdout, `${' '.repeat(6 + width)}  fix: ${check.fix}`);
    }
    const counts = (['fail', 'warn'] as const).map((status) => `${checks.filter((check) => check.status === status).length} ${status === 'fail' ? 'failed' : 'to look at'}`);
    line(io.stdout, failed || checks.some((check) => check.status === 'warn') ? `\n${counts.join(', ')}` : '\neverything is in order');
  }
  return failed ? ExitCode.failure : ExitCode.ok;
}
