/**
 * Process checks for tests. A killed process whose parent never reaps it (an
 * orphan under a PID 1 that does not reap) stays a zombie: it is dead, but
 * `kill(pid, 0)` still succeeds, so "gone" means missing or a zombie.
 */
import { readProcStat } from "../../src/runner/proc-stat.ts";

/** True when `pid` no longer runs (absent, or a zombie). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  return readProcStat(pid)?.state === "Z";
}
