import { readProcStat } from "../../src/runner/proc-stat.ts";

/**
 * Whether a process no longer runs: `kill(pid, 0)` fails, or it is a zombie.
 * Zombies count as gone because where PID 1 does not reap orphans (as in some
 * containers and this sandbox) a killed grandchild stays a zombie forever.
 */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  return readProcStat(pid)?.state === "Z";
}
