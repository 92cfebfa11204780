/** Task-id arguments of commands like `get ID` and `rm ID…`. */
import { usage } from "./cli-error.ts";

/**
 * Reject what cannot be a task id: empty, `.` / `..` (URL parsing would
 * resolve them away and reach another route), control characters.
 */
function checkId(id: string): string {
  if (id.trim() === "") throw usage("task ID must not be empty");
  if (id === "." || id === "..") throw usage(`invalid task ID ${JSON.stringify(id)}`);
  if (/[\x00-\x1f\x7f]/.test(id)) throw usage(`invalid task ID ${JSON.stringify(id)}: contains control characters`);
  return id;
}

/** Exactly one id. */
export function oneId(positionals: readonly string[]): string {
  if (positionals.length === 0) throw usage("missing task ID");
  if (positionals.length > 1) throw usage(`expected one task ID, got ${positionals.length}: ${positionals.join(" ")}`);
  return checkId(positionals[0]!);
}

/** One or more ids (all checked before any is used). */
export function someIds(positionals: readonly string[]): string[] {
  if (positionals.length === 0) throw usage("missing task ID (give one or more)");
  return positionals.map(checkId);
}
