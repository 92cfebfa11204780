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
  /** Fields 14 and 15: CPU time in user and kernel mode so far, clock ticks (all threads). */
  utime: number;
  stime: number;
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
  return { state, pgrp, startTime, utime: Number(fields[11]), stime: Number(fields[12]) };
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

/** Clock ticks per second of `/proc` start times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;
/**
 * How far (clock ticks) a recorded start time may be from the one in `/proc`
 * and still name the same process: covers an estimate made at spawn
 * ({@link estimateStartTime}). A pid reused within half a second of the
 * original's start would need the whole pid space to wrap in that time.
 */
export const START_TIME_TOLERANCE_TICKS = 50;

let bootClock: { checkedAt: number; offsetMs: number } | undefined;

/**
 * Milliseconds since boot on the clock of `/proc` start times (CLOCK_BOOTTIME):
 * the monotonic clock plus an offset read from `/proc/uptime`, re-read once a
 * second (a suspend moves the two apart). Undefined without `/proc`.
 */
function bootMs(): number | undefined {
  const now = performance.now();
  if (bootClock === undefined || now - bootClock.checkedAt > 1000) {
    let uptimeMs: number;
    try {
      // Two decimals: the value is cut to 10 ms, so the middle of that step is + 5 ms.
      uptimeMs = Number.parseFloat(readFileSync("/proc/uptime", "latin1")) * 1000 + 5;
    } catch {
      return undefined;
    }
    if (!Number.isFinite(uptimeMs)) return undefined;
    bootClock = { checkedAt: now, offsetMs: uptimeMs - performance.now() };
  }
  return now + bootClock.offsetMs;
}

/**
 * The start time `/proc` will show for a process forked between two readings
 * of `performance.now()` (`before`, `after`), without reading `/proc/<pid>/stat`:
 * right after a spawn that read waits until the child's `exec` is through,
 * ≈ 80 µs of the agent's thread per task under load (bench/README.md,
 * benchmark 1). Compared within {@link START_TIME_TOLERANCE_TICKS}.
 */
export function estimateStartTime(before: number, after: number): string | undefined {
  const base = bootMs();
  if (base === undefined) return undefined;
  const forkedAt = base - (performance.now() - (before + after) / 2);
  return String(Math.floor((forkedAt * USER_HZ) / 1000));
}

/** Whether `/proc`'s start time `actual` names the process recorded with `recorded`. */
export function sameStartTime(actual: string, recorded: string): boolean {
  const d = BigInt(actual) - BigInt(recorded);
  return d <= BigInt(START_TIME_TOLERANCE_TICKS) && d >= -BigInt(START_TIME_TOLERANCE_TICKS);
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
 * start time (within {@link START_TIME_TOLERANCE_TICKS}), or (b) the leader is gone and some
 * live member of the group started no earlier than that. Without a recorded start
 * time nothing is killed. Returns whether a signal was sent.
 */
export function killLeftoverGroup(proc: { pid: number; pgid: number; startTime?: string }): boolean {
  const recorded = proc.startTime;
  if (recorded === undefined || !/^\d+$/.test(recorded)) return false;
  const leader = readProcStat(proc.pid);
  if (leader && !isDead(proc.pid, leader)) {
    if (!sameStartTime(leader.startTime, recorded) || leader.pgrp !== proc.pgid) return false; // pid reused
  } else {
    const since = BigInt(recorded) - BigInt(START_TIME_TOLERANCE_TICKS);
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
