/**
 * Process-group and session liveness and identity from `/proc` (Linux).
 *
 * A run records `{pid, pgid, startTime}` so that crash recovery can kill a
 * leftover process group without ever hitting a process that merely reuses
 * the pid. Zombies count as dead everywhere here: a zombie holds no pipes and
 * runs no code, and where PID 1 does not reap orphans (minimal containers)
 * a killed grandchild stays a zombie forever — treating it as alive would make
 * every stop wait for a group that can never disappear.
 *
 * Every run is a session of its own (run-process.ts: sid = pgid = the leader's
 * pid). A process of the run may start another process group inside that
 * session (coreutils `timeout`, bash `set -m`), which `kill(-pgid)` misses;
 * the kernel has no "signal a session", so the stop paths and crash recovery
 * find those processes by field 6 of `/proc/<pid>/stat`. That is a scan of
 * every process of the host (≈ 10 µs per process), so it is made only when a
 * run is stopped or recovered — never after a normal exit — and concurrent
 * requests share one scan ({@link sessionMembers}, {@link killLeftoverGroup}).
 */
import { readdirSync, readFileSync } from "node:fs";

/** The fields of `/proc/<pid>/stat` we use. */
export interface ProcStat {
  /** Field 3: R, S, D, Z, T, … */
  state: string;
  /** Field 5: process group id. */
  pgrp: number;
  /** Field 6: session id. */
  session: number;
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
  const session = Number(fields[3]);
  const startTime = fields[19];
  if (!state || !Number.isInteger(pgrp) || !Number.isInteger(session) || !startTime || !/^\d+$/.test(startTime)) return undefined;
  return { state, pgrp, session, startTime, utime: Number(fields[11]), stime: Number(fields[12]) };
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

/** A live process found by a scan of `/proc`, with its stat as read then. */
export interface ProcMember {
  pid: number;
  stat: ProcStat;
}

let scans = 0;
/**
 * How many full scans of `/proc` this thread has made so far. For tests and
 * benchmarks: a run whose leader exits on its own with nothing left in its
 * group makes none.
 */
export function procScans(): number {
  return scans;
}

/** Live (non-zombie) processes that `keep` accepts, found by scanning `/proc/*\/stat`. */
function scanProc(keep: (stat: ProcStat) => boolean, first = false): ProcMember[] {
  const found: ProcMember[] = [];
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return found;
  }
  scans++;
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue; // not a pid directory
    const pid = Number(name);
    const stat = readProcStat(pid);
    if (!stat || !keep(stat) || isDead(pid, stat)) continue;
    found.push({ pid, stat });
    if (first) break;
  }
  return found;
}

/** Scan results by session id. */
function bySession(members: readonly ProcMember[]): Map<number, ProcMember[]> {
  const found = new Map<number, ProcMember[]>();
  for (const m of members) {
    const list = found.get(m.stat.session);
    if (list) list.push(m);
    else found.set(m.stat.session, [m]);
  }
  return found;
}

/** Live (non-zombie) members of a process group. */
function liveMembers(pgid: number, first: boolean): ProcMember[] {
  return scanProc((stat) => stat.pgrp === pgid, first);
}

/**
 * Whether the process a scan found is still that process and alive: same
 * session and start time, not a zombie. One read of its stat.
 */
export function stillLive(m: ProcMember): boolean {
  const now = readProcStat(m.pid);
  return now !== undefined && now.session === m.stat.session && now.startTime === m.stat.startTime && !isDead(m.pid, now);
}

/**
 * Sends `sig` to a process a scan found, if it is still that process
 * ({@link stillLive}): a pid freed and reused since the scan is left alone.
 * Returns whether the signal was sent.
 */
export function signalMember(m: ProcMember, sig: NodeJS.Signals): boolean {
  if (!stillLive(m)) return false;
  try {
    process.kill(m.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether pid `sid` now belongs to another process than the session leader
 * recorded with `startTime` (compared within {@link START_TIME_TOLERANCE_TICKS}).
 * A session id stays taken while any process of the session is left, so then
 * that session is gone and `sid` names somebody else's. One read.
 */
export function sessionReused(sid: number, startTime: string | undefined): boolean {
  if (startTime === undefined) return false;
  const now = readProcStat(sid);
  return now !== undefined && !sameStartTime(now.startTime, startTime);
}

/** Sessions asked for since the last scan, each with the callers waiting for it. */
let sessionQueries: Map<number, ((members: ProcMember[]) => void)[]> | undefined;

/**
 * The live (non-zombie) processes of session `sid`, from a scan of `/proc`
 * that starts after this call: on the next turn of the event loop, one scan
 * for every session asked for until then (stopping a thousand runs at once
 * costs a few scans, not a thousand). Empty without `/proc`. Never rejects.
 */
export function sessionMembers(sid: number): Promise<ProcMember[]> {
  if (!hasProc()) return Promise.resolve([]);
  const { promise, resolve } = Promise.withResolvers<ProcMember[]>();
  if (sessionQueries === undefined) {
    sessionQueries = new Map();
    setImmediate(answerSessionQueries);
  }
  const waiting = sessionQueries.get(sid);
  if (waiting) waiting.push(resolve);
  else sessionQueries.set(sid, [resolve]);
  return promise;
}

function answerSessionQueries(): void {
  const queries = sessionQueries;
  sessionQueries = undefined;
  if (!queries) return;
  let found = new Map<number, ProcMember[]>();
  try {
    found = bySession(scanProc((stat) => queries.has(stat.session)));
  } finally {
    for (const [sid, waiting] of queries) for (const resolve of waiting) resolve(found.get(sid) ?? []);
  }
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

/** Every live process by session, from one scan shared by the calls of one synchronous turn. */
let turnSessions: Map<number, ProcMember[]> | undefined;
function sessionsThisTurn(): Map<number, ProcMember[]> {
  if (turnSessions === undefined) {
    turnSessions = bySession(scanProc(() => true));
    queueMicrotask(() => (turnSessions = undefined));
  }
  return turnSessions;
}

/** How many more scans look for processes forked into a killed session while it was being killed. */
const RECHECK_PASSES = 5;
/** A session killed by recovery: the leader's recorded start time, and the earliest a member may have started (ticks). */
interface KilledSession {
  recorded: string;
  since: bigint;
}
/** Sessions killed this turn (by sid), rechecked on the next one. */
let recheckQueue: Map<number, KilledSession> | undefined;

function recheckLater(sid: number, killed: KilledSession): void {
  if (recheckQueue === undefined) {
    const queue = new Map<number, KilledSession>();
    recheckQueue = queue;
    setImmediate(() => {
      recheckQueue = undefined;
      recheck(queue, RECHECK_PASSES);
    });
  }
  recheckQueue.set(sid, killed);
}

/**
 * SIGKILLs what is still alive in the sessions (processes a member forked
 * between the scan and its own SIGKILL), with one scan for all of them per
 * pass; again on the next turn while a pass found something.
 */
function recheck(sessions: Map<number, KilledSession>, passes: number): void {
  for (const [sid, killed] of sessions) if (sessionReused(sid, killed.recorded)) sessions.delete(sid);
  if (sessions.size === 0) return;
  const found = scanProc((stat) => {
    const killed = sessions.get(stat.session);
    return killed !== undefined && BigInt(stat.startTime) >= killed.since;
  });
  for (const m of found) signalMember(m, "SIGKILL");
  if (found.length === 0 || passes <= 1) return;
  const left = new Map<number, KilledSession>();
  for (const m of found) left.set(m.stat.session, sessions.get(m.stat.session)!);
  setImmediate(() => recheck(left, passes - 1));
}

/**
 * SIGKILLs every live process of session `sid` that started no earlier than
 * its leader, recorded with start time `recorded` (a process of the session
 * cannot predate it; without a recorded time: every process of the session),
 * from a scan shared with the other calls of this turn; with a recorded time,
 * looks again on the next turn for processes forked meanwhile. Returns
 * whether a signal was sent. Nothing without `/proc`.
 */
function killSession(sid: number, recorded: string | undefined): boolean {
  if (!hasProc()) return false;
  const since = recorded === undefined ? 0n : BigInt(recorded) - BigInt(START_TIME_TOLERANCE_TICKS);
  let sent = false;
  for (const m of sessionsThisTurn().get(sid) ?? []) {
    if (BigInt(m.stat.startTime) >= since && signalMember(m, "SIGKILL")) sent = true;
  }
  if (recorded !== undefined) recheckLater(sid, { recorded, since });
  return sent;
}

/**
 * A run that lost the thread watching it (run-thread.ts): SIGKILLs its process
 * group and every other process of its session — only when the leader started
 * it (`pgid` = `pid`); with a recorded start time, only while its pid is not
 * another process's ({@link sessionReused}) and only processes that started
 * no earlier than that (within {@link START_TIME_TOLERANCE_TICKS}).
 */
export function killRunSession(proc: { pid: number; pgid: number; startTime?: string }): void {
  try {
    process.kill(-proc.pgid, "SIGKILL");
  } catch {
    // gone
  }
  if (proc.pgid !== proc.pid) return;
  const recorded = proc.startTime !== undefined && /^\d+$/.test(proc.startTime) ? proc.startTime : undefined;
  if (!sessionReused(proc.pid, recorded)) killSession(proc.pid, recorded);
}

/**
 * Crash recovery: SIGKILLs what is left of a run — its process group and, when
 * its leader started a session of its own (`pgid` = `pid`, every run since
 * run-process.ts uses `detached`), every other process of that session
 * (other process groups: coreutils `timeout`, bash `set -m`) — but only when
 * it is that run's as far as /proc can tell: (a) the leader still exists with
 * the recorded start time (within {@link START_TIME_TOLERANCE_TICKS}), or
 * (b) the leader is gone and some live member of the group (or session)
 * started no earlier than that; of the session only such members are killed.
 * Without a recorded start time nothing is killed. The calls of one
 * synchronous turn (recovery of every interrupted run) share one scan of
 * `/proc`; one more scan per turn on the following turns kills what the
 * session's processes forked meanwhile. Returns whether a signal was sent.
 */
export function killLeftoverGroup(proc: { pid: number; pgid: number; startTime?: string }): boolean {
  const recorded = proc.startTime;
  if (recorded === undefined || !/^\d+$/.test(recorded)) return false;
  const since = BigInt(recorded) - BigInt(START_TIME_TOLERANCE_TICKS);
  const ownSession = proc.pgid === proc.pid && hasProc();
  const leader = readProcStat(proc.pid);
  if (leader && !isDead(proc.pid, leader)) {
    if (!sameStartTime(leader.startTime, recorded) || leader.pgrp !== proc.pgid) return false; // pid reused
  } else {
    // The group is part of the session: its members are among the session's.
    const members = ownSession ? (sessionsThisTurn().get(proc.pid) ?? []) : liveMembers(proc.pgid, false);
    if (!members.some((m) => BigInt(m.stat.startTime) >= since)) return false;
  }
  let sent = false;
  try {
    process.kill(-proc.pgid, "SIGKILL");
    sent = true;
  } catch {
    // the group is empty; what is left is in other groups of the session
  }
  if (ownSession && killSession(proc.pid, recorded)) sent = true;
  return sent;
}
