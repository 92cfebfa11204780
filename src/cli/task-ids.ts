/** Task-id arguments of commands like `get ID` and `rm ID…`. */
import { usage } from "./cli-error.ts";

/** Exactly one id. */
export function oneId(positionals: readonly string[]): string {
  if (positionals.length === 0) throw usage("missing task ID");
  if (positionals.length > 1) throw usage(`expected one task ID, got ${positionals.length}: ${positionals.join(" ")}`);
  const id = positionals[0]!;
  if (id.trim() === "") throw usage("task ID must not be empty");
  return id;
}

/** One or more ids. */
export function someIds(positionals: readonly string[]): string[] {
  if (positionals.length === 0) throw usage("missing task ID (give one or more)");
  if (positionals.some((p) => p.trim() === "")) throw usage("task ID must not be empty");
  return [...positionals];
}
