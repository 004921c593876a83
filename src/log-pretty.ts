import { writeSync } from 'node:fs';
import type { DestinationStream } from 'pino';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Shown by the line's layout (time, level, message) or the same on every line (name, pid). */
const LAYOUT_FIELDS = new Set(['time', 'level', 'msg', 'name', 'pid', 'hostname']);

function value(field: unknown): string {
  if (typeof field === 'string') return /^[^\s"=]+$/.test(field) ? field : JSON.stringify(field);
  return JSON.stringify(field) ?? String(field);
}

/**
 * One JSON log line as a person reads it: `2026-12-02T18:40:00.123Z INFO  message  key=value ...`.
 * It formats what pino has already serialized, so every redaction holds exactly as in JSON.
 */
export function prettyLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = LEVELS[entry.level as number] ?? String(entry.level);
  const rest = Object.entries(entry)
    .filter(([key]) => !LAYOUT_FIELDS.has(key))
    .map(([key, field]) => `${key}=${value(field)}`)
    .join(' ');
  return `${String(entry.time)} ${level.padEnd(5)} ${typeof entry.msg === 'string' ? entry.msg : ''}${rest === '' ? '' : `  ${rest}`}\n`;
}

/** Writes pretty lines synchronously to `fd`, as the JSON destination does, so nothing is lost on exit. */
export function prettyDestination(fd = 2): DestinationStream {
  return { write: (line: string) => void writeSync(fd, prettyLine(line)) };
}
