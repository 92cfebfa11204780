/**
 * Run a command as the unprivileged user `nobody` (uid and gid 65534), for
 * the tests of what an agent's user may not read or write: as root every
 * access check passes. Available when the tests run as root and util-linux's
 * `setpriv` is installed (CI runs as root); otherwise such tests skip.
 */
import { chownSync } from "node:fs";

/** uid and gid of `nobody`. */
export const NOBODY = 65534;

/** Whether `asNobody` can drop privileges here. */
export const canRunAsNobody: boolean = process.getuid?.() === 0 && Bun.which("setpriv") !== null;

/** `argv` run as `nobody`, with no supplementary groups. */
export function asNobody(argv: readonly string[]): string[] {
  return ["setpriv", "--reuid", String(NOBODY), "--regid", String(NOBODY), "--clear-groups", ...argv];
}

/** Hand `paths` to `nobody` (each on its own: not recursive). */
export function giveToNobody(...paths: string[]): void {
  for (const p of paths) chownSync(p, NOBODY, NOBODY);
}
