/**
 * Process-group liveness and identity from `/proc` (Linux).
 *
 * A run records `{pid, pgid, startTime}` so that crash recovery can kill a
 * leftover process group without ever hitting a process that merely reuses
 * the pid. Zombies count as dead everywhere here: a zombie holds no pipes and
 * runs no code, and where PID 1 does not reap orphans (minimal containers)
 * a killed grandchild stays a zombie forever — treating it as alive would make
 * every stop wait for a group that can never disappear.
 */
import { readdirSync, readFileSync } from "node:fs";

/** The fields of `/proc/<pid>/stat` we use. */
export interface ProcStat {
  /** Field 3: R, S, D, Z, T, … */
  state: string;
  /** Field 5: process group id. */
  pgrp: number;
  /** Field 22: start time in clock ticks since boot, as text (exact, comparable as an integer). */
  startTime: string;
}

/**
 * Parses the text of `/proc/<pid>/stat`. Fields are read after the LAST ')',
 * because the command name (field 2) may itself contain spaces and parentheses.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(")");
  if (close === -1) return undefined;
  // After ") ": field 3 is at index 0, so field k is at index k - 3.
  const fields = text.slice(close + 2).split(" ");
  const state = fields[0];
  const pgrp = Number(fields[2]);
  const startTime = fields[19];
  if (!state || !Number.isInteger(pgrp) || !startTime || !/^\d+$/.test(startTime)) return undefined;
  return { state, pgrp, startTime };
}

/** Reads and parses `/proc/<pid>/stat`; undefined if the process does not exist (or no /proc). */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  return parseProcStat(text);
}

/** Start time (field 22 of `/proc/<pid>/stat`) of a process, or undefined if it does not exist. */
export function readProcStartTime(pid: number): string | undefined {
  return readProcStat(pid)?.startTime;
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String(err.code) : undefined;
}

/**
 * A zombie whose thread group still has live threads (its main thread exited
 * with `pthread_exit`) is still running code; a real zombie has one task entry.
 */
function isDead(pid: number, stat: ProcStat): boolean {
  if (stat.state !== "Z") return false;
  try {
    return readdirSync(`/proc/${pid}/task`).length <= 1;
  } catch {
    return true;
  }
}

let procAvailable: boolean | undefined;
function hasProc(): boolean {
  if (procAvailable === undefined) {
    try {
      readdirSync("/proc/self/task");
      procAvailable = true;
    } catch {
      procAvailable = false;
    }
  }
  return procAvailable;
}

/** Live (non-zombie) members of a process group, found by scanning `/proc/*\/stat`. */
function liveMembers(pgid: number, first: boolean): { pid: number; stat: ProcStat }[] {
  const found: { pid: number; stat: ProcStat }[] = [];
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return found;
  }
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue; // not a pid directory
    const pid = Number(name);
    const stat = readProcStat(pid);
    if (!stat || stat.pgrp !== pgid || isDead(pid, stat)) continue;
    found.push({ pid, stat });
    if (first) break;
  }
  return found;
}

/**
 * Whether any live process is left in the group: `kill(-pgid, 0)` (ESRCH →
 * false, EPERM → true); when that succeeds and `/proc` is available, a group
 * made only of zombies counts as gone.
 */
export function groupAlive(pgid: number): boolean {
  return createGroupProbe(pgid)();
}

/**
 * {@link groupAlive} for polling one group repeatedly: it re-checks the member
 * it found last before scanning all of `/proc` again, so waiting out a
 * lingering process costs one small read per poll, not one per host process.
 */
export function createGroupProbe(pgid: number): () => boolean {
  let hint: number | undefined;
  return () => {
    try {
      process.kill(-pgid, 0);
    } catch (err) {
      return errnoCode(err) === "EPERM";
    }
    if (!hasProc()) return true;
    if (hint !== undefined) {
      const stat = readProcStat(hint);
      if (stat && stat.pgrp === pgid && !isDead(hint, stat)) return true;
    }
    hint = liveMembers(pgid, true)[0]?.pid;
    return hint !== undefined;
  };
}

/**
 * Crash recovery: SIGKILLs a leftover process group of a run, but only when it
 * is that run's group as far as /proc can tell — (a) the leader still exists with the recorded
 * start time, or (b) the leader is gone and some live member of the group
 * started no earlier than the recorded start time. Without a recorded start
 * time nothing is killed. Returns whether a signal was sent.
 */
export function killLeftoverGroup(proc: { pid: number; pgid: number; startTime?: string }): boolean {
  const recorded = proc.startTime;
  if (recorded === undefined || !/^\d+$/.test(recorded)) return false;
  const leader = readProcStat(proc.pid);
  if (leader && !isDead(proc.pid, leader)) {
    if (leader.startTime !== recorded || leader.pgrp !== proc.pgid) return false; // pid reused
  } else {
    const since = BigInt(recorded);
    const ours = liveMembers(proc.pgid, false).some((m) => BigInt(m.stat.startTime) >= since);
    if (!ours) return false;
  }
  try {
    process.kill(-proc.pgid, "SIGKILL");
    return true;
  } catch {
    return false;
  }
}
