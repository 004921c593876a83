import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type FlagValues<O extends Options> = { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : string };

/** parseArgs with tokend's error: one line naming the bad flag, a guess at the meant one, and where to read more. */
export function parseFlags<O extends Options>(
  command: string,
  argv: string[],
  options: O,
  allowPositionals = false,
): { values: FlagValues<O>; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return { values: parsed.values, positionals: parsed.positionals };
  } catch (error) {
    throw usageError(command, error as Error & { code?: string }, Object.keys(options));
  }
}

function usageError(command: string, error: Error & { code?: string }, known: string[]): UsageError {
  const help = `see \`tokend ${command} --help\``;
  const quoted = /'([^']+)'/.exec(error.message)?.[1] ?? '';
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const name = quoted.replace(/^-+/, '').split('=')[0] ?? '';
      const guess = closest(name, known);
      return new UsageError(`unknown flag ${quoted} for \`tokend ${command}\``, {
        hint: guess === undefined ? help : `did you mean --${guess}? (${help})`,
      });
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const flag = quoted.split(' ')[0] ?? quoted;
      return new UsageError(/does not take/.test(error.message) ? `${flag} takes no value` : `${flag} needs a value`, { hint: help });
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new UsageError(`\`tokend ${command}\` takes no argument ${JSON.stringify(quoted)}`, { hint: help });
    default:
      return new UsageError((error.message.split('\n')[0] ?? 'invalid arguments').replace(/^./, (c) => c.toLowerCase()), { hint: help });
  }
}

/** The known flag a typo most likely meant: a prefix either way, or at most two edits away. */
function closest(name: string, known: string[]): string | undefined {
  if (name === '') return undefined;
  const prefix = known.find((flag) => flag.startsWith(name) || name.startsWith(flag));
  if (prefix !== undefined) return prefix;
  const scored = known.map((flag) => ({ flag, distance: editDistance(name, flag) })).sort((a, b) => a.distance - b.distance);
  return scored[0] !== undefined && scored[0].distance <= 2 ? scored[0].flag : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
