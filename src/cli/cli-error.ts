/**
 * The one error type of the CLI. Every failure a command reports is a
 * `CliError` with a kind from a small closed set; the kind maps to the exit
 * status in exactly one place (`exitCodeOf`).
 */

/** Closed set of CLI failure kinds. */
export type CliErrorKind =
  /** Bad flag, bad value or missing argument: exit 2. */
  | "usage"
  /** The agent answered with an error (`{"error", "message"}`): exit 1. */
  | "api"
  /**
   * The agent could not be reached at the URL: refused, no answer in time,
   * a broken connection, or what answers there is not a tasklane agent: exit 3.
   */
  | "unreachable";

/** A failure the CLI prints as `tasklane: <message>` before exiting non-zero. */
export class CliError extends Error {
  override name = "CliError";
  readonly kind: CliErrorKind;
  /** HTTP status of an `api` error. */
  readonly status: number | undefined;
  /** The API's error label (`TaskNotFound`, `InvalidRequest`, …) of an `api` error. */
  readonly label: string | undefined;

  constructor(kind: CliErrorKind, message: string, opts: { status?: number; label?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.kind = kind;
    this.status = opts.status;
    this.label = opts.label;
  }
}

/** Shorthand for a usage error; `message` names the flag or argument. */
export function usage(message: string): CliError {
  return new CliError("usage", message);
}

/** Exit status of a failure kind: 1 API error, 2 usage error, 3 agent unreachable (or not an agent). */
export function exitCodeOf(kind: CliErrorKind): number {
  switch (kind) {
    case "usage":
      return 2;
    case "api":
      return 1;
    case "unreachable":
      return 3;
  }
}
