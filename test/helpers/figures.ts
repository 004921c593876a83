/**
 * What the reliability suites measured, kept for docs/reliability.md: each suite records what it tried
 * and what happened, scripts/reliability-report.js adds it up. A no-op outside `npm test`.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Figure =
  /** One fault injected; `survived`: the caller got the answer the suite expects, the daemon stayed up and recovered. */
  | { kind: 'fault'; faultClass: string; name: string; survived: boolean; caller?: string; log?: string }
  /** Bad inputs sent to one surface, and what came back that should not have. */
  | { kind: 'bad-input'; surface: string; cases: number; crashes: number; unexplained5xx: number; leaks: number }
  | {
      kind: 'load';
      name: string;
      requests: number;
      concurrency: number;
      durationSeconds: number;
      errors: number;
      rssBeforeMiB: number;
      rssAfterMiB: number;
      fdsBefore: number;
      fdsAfter: number;
    }
  /** One attack tried as another local user; `succeeded` must be false. */
  | { kind: 'attack'; name: string; attempts: number; succeeded: boolean }
  | { kind: 'secret-search'; name: string; secrets: number; files: number; bytes: number; hits: number };

export function recordFigure(figure: Figure): void {
  const base = process.env.TOKEND_TEST_ARTIFACTS;
  if (base === undefined || base === '') return;
  const dir = join(base, 'figures');
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, `${process.pid}.jsonl`), `${JSON.stringify(figure)}\n`);
}
