/** Figure 3: the CLI's wall time against `node -e 0`, the cost of starting node at all. */
import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { BIN } from '../../test/helpers/daemon-process.js';
import type { Row } from '../lib/report.js';
import { alternate, median } from '../lib/rounds.js';
import type { BenchContext } from '../run.js';

const run = promisify(execFile);

export async function cliStart(ctx: BenchContext): Promise<Row[]> {
  const timed = (args: string[]) => async () => {
    const started = performance.now();
    // Asynchronously: the stand-in answers from this process's event loop.
    await run(process.execPath, args, { env: ctx.daemon.env });
    return performance.now() - started;
  };
  await run(process.execPath, [BIN, 'token', '--scopes', 'bigquery'], { env: ctx.daemon.env });
  const rounds = await alternate(ctx.quick ? 5 : 25, {
    node: timed(['-e', '0']),
    token: timed([BIN, 'token', '--scopes', 'bigquery']),
    version: timed([BIN, '--version']),
    env: timed([BIN, 'env']),
  });
  const base = { figure: '3 CLI wall time', unit: 'ms', baseline: median(rounds.node), baselineName: 'node -e 0' };
  return [
    { ...base, case: 'tokend token (cached)', tokend: median(rounds.token), target: { kind: 'ratio', op: '<=', value: 1.3 } },
    { ...base, case: 'tokend --version', tokend: median(rounds.version), target: { kind: 'ratio', op: '<=', value: 1.2 } },
    { ...base, case: 'tokend env', tokend: median(rounds.env), target: { kind: 'ratio', op: '<=', value: 1.2 } },
  ];
}
