import { inspect } from 'node:util';

const REDACTED = '[Redacted]';

/**
 * A value that must never be printed: refresh tokens, client secrets, codes, verifiers. It prints,
 * serializes and inspects as `[Redacted]`; only `reveal()` gives the value, and only the code that
 * sends it upstream or stores it calls that.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  equals(other: Secret): boolean {
    return this.#value === other.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
