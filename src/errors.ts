/**
 * The one error type of the agent. Every failure a client can see is an
 * `AgentError` with a code from a small closed set; each transport maps the
 * code to its own status in exactly one place (`httpStatusOf`, `grpcStatusOf`).
 */

/** Closed set of error labels; the label is also the `error` field of the REST envelope. */
export type ErrorCode =
  | "InvalidRequest"
  | "Unauthenticated"
  | "PermissionDenied"
  | "TaskNotFound"
  | "NotFound"
  | "PayloadTooLarge"
  | "RateLimited"
  | "Unavailable"
  | "Internal";

/** A client-visible failure. `message` is human text and never contains secrets. */
export class AgentError extends Error {
  readonly code: ErrorCode;
  /** For `RateLimited`: how long the client should wait, in ms. */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, opts: { retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = "AgentError";
    this.code = code;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** Shorthand for a validation failure. */
export function invalid(message: string): AgentError {
  return new AgentError("InvalidRequest", message);
}

/** How much of a client-supplied value a message shows. */
const MAX_SHOWN = 80;

/**
 * Cut a client-supplied string for a message after `max` UTF-16 units (never
 * inside a surrogate pair), marking the cut with "…". Messages travel in a
 * gRPC trailer, where an id of 64 KiB would break the whole connection.
 */
export function clip(s: string, max = MAX_SHOWN): string {
  if (s.length <= max) return s;
  let end = max;
  const last = s.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${s.slice(0, end)}…`;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * A field name from a request, fit for a message: an identifier as it is,
 * anything else JSON-quoted (control characters escaped); cut by {@link clip}.
 */
export function fieldName(key: string): string {
  return IDENTIFIER.test(key) ? clip(key) : JSON.stringify(clip(key));
}

/**
 * Text from elsewhere (an answer, a reason) fit for one line of a message:
 * runs of whitespace and control characters (NUL, ESC…) collapsed to one
 * space, cut by {@link clip}. Only the first
 * `4 * max` characters are looked at, so megabytes cost no more than a line;
 * text cut there ends with "…" too.
 */
export function clipLine(text: string, max = MAX_SHOWN): string {
  const head = text.length > 4 * max ? text.slice(0, 4 * max) : text;
  const line = head.replace(/[\s\u0000-\u001f\u007f]+/g, " ").trim();
  return head.length < text.length && line.length <= max ? `${line}…` : clip(line, max);
}

/** Shorthand for an unknown (or not visible to the caller) task; a long id is cut in the message. */
export function taskNotFound(id: string): AgentError {
  return new AgentError("TaskNotFound", id === "" ? "task id is empty: no such task" : `task ${clip(id)} not found`);
}

/** HTTP status for an error code (CONTRACT §2 error table). */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case "InvalidRequest":
      return 400;
    case "Unauthenticated":
      return 401;
    case "PermissionDenied":
      return 403;
    case "TaskNotFound":
    case "NotFound":
      return 404;
    case "PayloadTooLarge":
      return 413;
    case "RateLimited":
      return 429;
    case "Unavailable":
      return 503;
    case "Internal":
      return 500;
  }
}

/** Numeric gRPC status codes used by the agent (values from the gRPC spec). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** gRPC status for an error code (CONTRACT §5 status codes). */
export function grpcStatusOf(code: ErrorCode): number {
  switch (code) {
    case "InvalidRequest":
      return GrpcCode.INVALID_ARGUMENT;
    case "Unauthenticated":
      return GrpcCode.UNAUTHENTICATED;
    case "PermissionDenied":
      return GrpcCode.PERMISSION_DENIED;
    case "TaskNotFound":
    case "NotFound":
      return GrpcCode.NOT_FOUND;
    case "PayloadTooLarge":
    case "RateLimited":
      return GrpcCode.RESOURCE_EXHAUSTED;
    case "Unavailable":
      return GrpcCode.UNAVAILABLE;
    case "Internal":
      return GrpcCode.INTERNAL;
  }
}

/**
 * Turn anything thrown into an `AgentError`. Unknown throwables become
 * `Internal` with a correlation id; `onInternal` gets the original so it can be
 * logged with that id.
 */
export function toAgentError(err: unknown, onInternal?: (correlationId: string, err: unknown) => void): AgentError {
  if (err instanceof AgentError) return err;
  const correlationId = crypto.randomUUID();
  onInternal?.(correlationId, err);
  return new AgentError("Internal", `internal error (correlation id ${correlationId})`, { cause: err });
}
