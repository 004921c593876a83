/**
 * What the bench found: one row per figure and case, tokend next to its baseline from the same run,
 * as a Markdown table (stdout and docs/performance.md) and as JSON.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';

export interface Row {
  figure: string;
  case: string;
  unit: string;
  tokend: number;
  /** Undefined where the figure has no baseline (a count, an absolute bound). */
  baseline?: number;
  baselineName?: string;
  /** What must hold, e.g. `ratio >= 0.9` or `tokend < 2`. */
  target?: { kind: 'ratio' | 'absolute'; op: '>=' | '<=' | '<' | '=='; value: number };
  note?: string;
}

export function ratio(row: Row): number | undefined {
  return row.baseline === undefined || row.baseline === 0 ? undefined : row.tokend / row.baseline;
}

export function met(row: Row): boolean | undefined {
  if (row.target === undefined) return undefined;
  const value = row.target.kind === 'ratio' ? ratio(row) : row.tokend;
  if (value === undefined) return undefined;
  const { op, value: bound } = row.target;
  return op === '>=' ? value >= bound : op === '<=' ? value <= bound : op === '<' ? value < bound : value === bound;
}

const number = (value: number) => (Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 10 ? value.toFixed(1) : value.toFixed(2));

export function markdownTable(rows: Row[]): string {
  const lines = ['| figure | case | tokend | baseline | ratio | target | met |', '|---|---|---:|---:|---:|---|---|'];
  for (const row of rows) {
    const r = ratio(row);
    const target = row.target === undefined ? '' : row.target.kind === 'ratio' ? `${row.target.op} ${row.target.value}×` : `${row.target.op} ${row.target.value} ${row.unit}`;
    const ok = met(row);
    lines.push(
      `| ${row.figure} | ${row.case}${row.note === undefined ? '' : ` (${row.note})`} | ${number(row.tokend)} ${row.unit} | ${row.baseline === undefined ? '' : `${number(row.baseline)} ${row.unit} (${row.baselineName ?? 'baseline'})`} | ${r === undefined ? '' : `${r.toFixed(2)}×`} | ${target} | ${ok === undefined ? '' : ok ? 'yes' : '**no**'} |`,
    );
  }
  return lines.join('\n');
}

export function machine(): Record<string, string> {
  const cpu = cpus();
  return {
    cpu: `${cpu[0]?.model ?? 'unknown'} × ${cpu.length}`,
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    kernel: release(),
    node: process.version,
    date: new Date().toISOString(),
  };
}

const BEGIN = '<!-- bench:begin -->';
const END = '<!-- bench:end -->';

/** Replaces the generated part of docs/performance.md; the prose around it is kept. */
export function writeDocs(path: string, rows: Row[], host: Record<string, string>, settings: string): void {
  const generated = `${BEGIN}
Measured by \`npm run bench\` on ${host.date?.slice(0, 10)}: ${host.cpu}, ${host.memory}, Linux ${host.kernel}, Node ${host.node}; ${settings}.

${markdownTable(rows)}
${END}`;
  const current = readFileSync(path, 'utf8');
  const start = current.indexOf(BEGIN);
  const end = current.indexOf(END);
  if (start < 0 || end < 0) throw new Error(`${path} has no ${BEGIN} … ${END} section`);
  writeFileSync(path, current.slice(0, start) + generated + current.slice(end + END.length));
}
