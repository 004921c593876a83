import { daemonLogLocation } from '../log-location.js';
import { ExitCode, isTokendError, type TokendError } from '../errors.js';
import { line, type Io } from './io.js';

/** The one place where a failure becomes what a person reads and the exit status a script checks. */
export function reportFailure(io: Io, error: unknown): number {
  if (isTokendError(error)) {
    printError(io, error);
    return error.exitCode;
  }
  line(io.stderr, `tokend: unexpected failure (${error instanceof Error ? error.name : typeof error})`);
  line(io.stderr, `hint: check ${daemonLogLocation()}, and report it if it persists`);
  return ExitCode.failure;
}

function printError(io: Io, error: TokendError): void {
  line(io.stderr, `tokend: ${error.message}`);
  if (error.hint !== undefined) line(io.stderr, `hint: ${error.hint}`);
}
