import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type FlagValues<O extends Options> = { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : string };

/** parseArgs with tokend's error: one line naming the bad flag and where to read more (`--help` is main's). */
export function parseFlags<O extends Options>(
  command: string,
  argv: string[],
  options: O,
  allowPositionals = false,
): { values: FlagValues<O>; positionals: string[] } {
  try {
    const parsed = parseArgs({
      args: argv,
      options,
      allowPositionals,
      strict: true,
    });
    return { values: parsed.values, positionals: parsed.positionals };
  } catch (error) {
    const message = (error as Error).message.split('\n')[0] ?? 'invalid arguments';
    throw new UsageError(message, { hint: `see \`tokend ${command} --help\`` });
  }
}
