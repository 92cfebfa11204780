/**
 * Runs one attempt of a task as its own session and reports the outcome.
 *
 * The child is spawned `detached` (setsid: its own session and process group,
 * sid = pgid = pid). Stopping the run (`stop`, the timeout) targets the whole
 * session: SIGTERM to the group and to every process in another group of the
 * session (coreutils `timeout`, bash `set -m`; found in `/proc`, see
 * proc-stat.ts), up to `killGraceMs` for all of it to disappear, then SIGKILL
 * the same way. When the leader exits on its own, what it left in its process
 * group is stopped the same way, but the session is not searched: that would
 * cost a scan of `/proc` per task on the hot path. Only a process that starts
 * a session of its own (`setsid`, a detaching daemon) escapes a stop. Output
 * is read with `getReader()` loops, split into lines per stream and handed
 * over as one array per chunk.
 *
 * A failed process is a result (exit code, signal, stop reason, spawn error);
 * nothing here throws or rejects.
 */
import { existsSync, statSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { isAbsolute } from "node:path";
import { clip } from "../errors.ts";
import type { RunProcess, StreamKind } from "../tasks/model.ts";
import { execErrno } from "./exec-check.ts";
import { createLineSplitter } from "./line-splitter.ts";
import { createGroupProbe, estimateStartTime, sessionMembers, sessionReused, signalMember, stillLive, type ProcMember } from "./proc-stat.ts";

/** Why a run was stopped from outside; the first reason given wins. */
export type StopReason = "timeout" | "canceled" | "replaced" | "deleted" | "shutdown";

/** What to run and where its output goes. */
export interface RunSpec {
  /** argv[0] should be an absolute path (see `prepareArgv`). */
  argv: string[];
  /**
   * The complete environment of the child (nothing is inherited); undefined:
   * the agent's own, which Bun passes without converting an object per spawn
   * (see {@link isOwnEnvironment}).
   */
  env: Record<string, string> | undefined;
  /** Absolute path of an existing directory; checked when the run starts. */
  cwd?: string;
  /**
   * Set when `argv` starts a wrapper that `exec`s this command in turn (the
   * resource limits' `prlimit` or cgroup `sh`): the command is checked as
   * `execve` would check it before the run starts, so that a run fails the
   * same way with or without the wrapper (see exec-check.ts).
   */
  checkExec?: string;
  /** Per-attempt timeout in ms; 0 or non-finite disables it. */
  timeoutMs: number;
  /** How long the group gets between SIGTERM and SIGKILL. */
  killGraceMs: number;
  maxLineBytes: number;
  /**
   * Called once per read chunk with the lines it completed (never an empty
   * array), in order per stream. `bytes` is how many bytes were read from the
   * stream's pipe since the previous call for it (a chunk that completed no
   * line is counted with the next call), so over a run the calls add up to
   * exactly what the process wrote: line terminators, "\r" of CRLF, invalid
   * UTF-8 and the dropped part of an over-long line included. Exceptions are
   * swallowed so that a consumer bug cannot stop the pipes from being drained.
   */
  onLines(stream: StreamKind, lines: string[], ts: number, bytes: number): void;
}

/** How a run ended. */
export interface RunResult {
  /** Exit code of the leader; absent when killed by a signal or never started. */
  exitCode?: number;
  /** Signal that killed the leader, e.g. "SIGKILL". */
  signal?: string;
  /** Set when `stop()` was called before the leader exited on its own; the first reason wins. */
  stoppedBy?: StopReason;
  /** The process could not be started (bad cwd, executable missing or not executable…). */
  spawnError?: string;
  startedAt: number;
  finishedAt: number;
}

/** A started run. */
export interface RunHandle {
  /** Identity of the process group; undefined if the spawn failed. */
  readonly process: RunProcess | undefined;
  /**
   * Settles with `process` once it is known: at once for a spawn on this
   * thread, a little later for one on a runner thread (run-thread.ts), whose
   * `process` is undefined until then.
   */
  readonly identified: Promise<RunProcess | undefined>;
  /** Settles once the whole group is gone and both pipes are drained. Never rejects. */
  readonly result: Promise<RunResult>;
  /**
   * TERM → grace → KILL of the group and, when the leader has not exited yet,
   * of every other process of its session. Idempotent: the first reason wins,
   * every call awaits the same result.
   */
  stop(reason: StopReason): Promise<RunResult>;
  /** `stop("shutdown")`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** First and largest interval of the poll for leftover group members after the leader exited. */
const POLL_FIRST_MS = 2;
const POLL_MAX_MS = 20;
/** After SIGKILL, how long to wait for the group to vanish (a process in uninterruptible sleep may linger). */
const KILL_WAIT_MS = 5_000;
/**
 * Once the group is gone the pipes reach EOF within milliseconds, unless a
 * process that left the group (setsid, daemonizing) still holds them: then
 * reading is cancelled after this long so the run can finish.
 */
const DRAIN_MS = 1_000;
/**
 * Longest a pipe's read loop runs without letting the event loop turn. A
 * child writing short lines at full speed (`yes`) refills the pipe faster
 * than its lines are split and logged: every `read()` then resolves at once,
 * as a microtask, and without a turn no request, timer, fsync callback or
 * other stream would be served while the task runs (an audit measured a
 * 5.4 s `/healthz` and a task timeout 1.2 s late).
 */
export const PUMP_TURN_MS = 4;

/**
 * Whether `env` holds exactly the agent's own environment (`process.env`), so
 * a task without variables of its own can be spawned with `env` undefined.
 */
export function isOwnEnvironment(env: Readonly<Record<string, string>>): boolean {
  const own = Object.entries(process.env).filter(([, v]) => v !== undefined);
  return own.length === Object.keys(env).length && own.every(([k, v]) => env[k] === v);
}

/** Starts a run. Never throws: problems that prevent starting become `spawnError`. */
export function startRun(spec: RunSpec, now: () => number = Date.now): RunHandle {
  const startedAt = now();
  const problem = checkSpec(spec);
  if (problem !== undefined) return failedRun(problem, startedAt, now());
  if (spec.checkExec !== undefined) {
    const code = execErrno(spec.checkExec, spec.cwd);
    if (code !== undefined) return failedRun(spawnErrorText(code, spec.checkExec), startedAt, now());
  }
  let proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  const beforeSpawn = performance.now();
  try {
    proc = Bun.spawn({
      cmd: spec.argv,
      ...(spec.env !== undefined ? { env: spec.env } : {}),
      ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      detached: true,
    });
  } catch (err) {
    return failedRun(describeSpawnError(err, spec.argv[0]!), startedAt, now());
  }

  const graceMs = Number.isFinite(spec.killGraceMs) && spec.killGraceMs > 0 ? spec.killGraceMs : 0;
  const pid = proc.pid;
  const pgid = pid; // detached: the child is the leader of a new session and group
  const sid = pid;
  const startTime = estimateStartTime(beforeSpawn, performance.now());
  const groupAlive = createGroupProbe(pgid);
  const info: RunProcess = startTime === undefined ? { pid, pgid } : { pid, pgid, startTime };
  const timers = createTimers();
  let stoppedBy: StopReason | undefined;
  let leaderExited = false;
  let groupGone = false; // once true, never signal -pgid or the session again (the id may be reused)
  /** SIGKILL was sent: every process found in the session from now on gets it too. */
  let killing = false;
  /** Session members outside the group that got SIGTERM (by pid); made by the first stop. */
  let termed: Set<number> | undefined;
  /** A session member found alive by the last scan: re-checked first, one read instead of a scan. */
  let lingering: ProcMember | undefined;
  let settled = false;
  let termination: Promise<void> | undefined;

  const exited = proc.exited.then(
    () => void (leaderExited = true),
    () => void (leaderExited = true),
  );
  if (Number.isFinite(spec.timeoutMs) && spec.timeoutMs > 0) {
    timers.after(spec.timeoutMs, () => void handle.stop("timeout"));
  }

  const cancels: (() => Promise<void>)[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, kind: StreamKind) => {
    const reader = stream.getReader();
    cancels.push(() => reader.cancel());
    const splitter = createLineSplitter(spec.maxLineBytes);
    // Bytes read and not yet reported: a chunk without a newline is reported with the line it starts.
    let unreported = 0;
    const emit = (lines: string[]) => {
      if (lines.length === 0) return;
      const bytes = unreported;
      unreported = 0;
      try {
        spec.onLines(kind, lines, now(), bytes);
      } catch {
        // see RunSpec.onLines
      }
    };
    try {
      let stretch = performance.now();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        unreported += value.length;
        emit(splitter.push(value));
        if (performance.now() - stretch > PUMP_TURN_MS) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          stretch = performance.now();
        }
      }
    } catch {
      // a stream error ends the output like EOF
    }
    // Every byte read is in a line by now: what no line completed is the partial last line.
    emit(splitter.end());
  };
  let pumpsDone = false;
  const pumps = Promise.all([pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr")]).then(() => void (pumpsDone = true));

  const signalGroup = (sig: NodeJS.Signals) => {
    if (groupGone) return;
    try {
      process.kill(-pgid, sig);
    } catch {
      // ESRCH: already gone
    }
  };

  /**
   * One scan of the session (shared with the other runs asking on this turn):
   * signals what it finds in the current phase — while terminating, SIGTERM
   * (and SIGCONT) once to each process outside the group, which `-pgid` does
   * not reach; once killing, SIGKILL to all of them, also to any forked since
   * the last scan. Returns whether any process of the session is alive.
   */
  const sweepSession = async (): Promise<boolean> => {
    const members = await sessionMembers(sid);
    // The leader's pid held by another process: nothing of the session is left, and sid is somebody else's.
    if (groupGone || sessionReused(sid, startTime)) return false;
    for (const m of members) {
      if (killing) signalMember(m, "SIGKILL");
      else if (m.stat.pgrp !== pgid && !(termed ??= new Set()).has(m.pid)) {
        termed.add(m.pid);
        if (signalMember(m, "SIGTERM")) signalMember(m, "SIGCONT");
      }
    }
    lingering = members[0];
    return members.length > 0;
  };

  /** Whether anything of the run is left: the group, and when stopped, the rest of the session. */
  const anyAlive = async (): Promise<boolean> => {
    if (groupAlive()) return true;
    if (stoppedBy === undefined) return false; // not stopped: the group only
    if (lingering !== undefined && stillLive(lingering)) return true;
    return sweepSession();
  };

  /** `sig` to the group, then (when stopped) to the rest of the session. */
  const signalAll = async (sig: "SIGTERM" | "SIGKILL") => {
    if (sig === "SIGKILL") killing = true;
    signalGroup(sig);
    if (sig === "SIGTERM") signalGroup("SIGCONT"); // a stopped (SIGSTOP) member can only act on TERM once continued
    if (stoppedBy !== undefined && !groupGone) await sweepSession(); // stopped: the whole session
  };

  /** Waits up to `ms` for the leader to exit and the group (when stopped: the session) to be empty. */
  const waitGone = async (ms: number): Promise<boolean> => {
    const deadline = performance.now() + ms;
    if (!leaderExited) await Promise.race([exited, timers.delay(ms)]);
    if (!leaderExited) return false;
    for (let interval = POLL_FIRST_MS; ; interval = Math.min(interval * 2, POLL_MAX_MS)) {
      if (!(await anyAlive())) return (groupGone = true);
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await timers.delay(Math.min(interval, left));
    }
  };

  const terminateGroup = async () => {
    // The hot path: the leader exited on its own and left nothing in its group.
    // kill(-pgid, 0) answers ESRCH, and /proc is not read at all.
    if (leaderExited && stoppedBy === undefined && !groupAlive()) {
      groupGone = true;
      return;
    }
    await signalAll("SIGTERM");
    if (await waitGone(graceMs)) return;
    await signalAll("SIGKILL");
    await waitGone(KILL_WAIT_MS);
  };
  const terminate = () => (termination ??= terminateGroup());

  const result = (async (): Promise<RunResult> => {
    await exited;
    await terminate(); // leftover members of the group (backgrounded children); of the session when stopped
    // Usually the pipes reached EOF with the exit: no drain timer then.
    const drained = pumpsDone || (await Promise.race([pumps.then(() => true), timers.delay(DRAIN_MS).then(() => false)]));
    if (!drained) {
      for (const cancel of cancels) cancel().catch(() => {});
      await pumps;
    }
    settled = true;
    timers.clear();
    const out: RunResult = { startedAt, finishedAt: now() };
    if (proc.signalCode !== null) out.signal = signalName(proc.signalCode);
    else if (proc.exitCode !== null) out.exitCode = proc.exitCode;
    if (stoppedBy !== undefined) out.stoppedBy = stoppedBy;
    return out;
  })();

  const handle: RunHandle = {
    process: info,
    identified: Promise.resolve(info),
    result,
    stop(reason) {
      if (!settled) {
        // Stopped before the leader exited: the whole session is signalled and waited for, not only the group.
        if (stoppedBy === undefined && !leaderExited) stoppedBy = reason;
        void terminate();
      }
      return result;
    },
    async [Symbol.asyncDispose]() {
      await handle.stop("shutdown");
    },
  };
  return handle;
}

function checkSpec(spec: RunSpec): string | undefined {
  if (spec.argv.length === 0 || spec.argv[0] === "") return "empty command line";
  if (!Number.isSafeInteger(spec.maxLineBytes) || spec.maxLineBytes < 0) {
    return `maxLineBytes must be a non-negative integer, got ${spec.maxLineBytes}`;
  }
  if (spec.cwd !== undefined) {
    if (!isAbsolute(spec.cwd)) return `cwd ${clip(spec.cwd)} is not an absolute path`;
    let isDir = false;
    try {
      isDir = statSync(spec.cwd).isDirectory();
    } catch {
      // missing or unreadable: reported below
    }
    if (!isDir) return `cwd ${clip(spec.cwd)} does not exist or is not a directory`;
  }
  return undefined;
}

function failedRun(spawnError: string, startedAt: number, finishedAt: number): RunHandle {
  const result = Promise.resolve<RunResult>({ spawnError, startedAt, finishedAt });
  return {
    process: undefined,
    identified: Promise.resolve(undefined),
    result,
    stop: () => result,
    [Symbol.asyncDispose]: async () => {},
  };
}

function describeSpawnError(err: unknown, cmd: string): string {
  const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : undefined;
  return spawnErrorText(code, cmd, err instanceof Error ? err.message : String(err));
}

/** A run's `spawnError` for `execve`'s errno `code` on `cmd`; `message` (or the code) for other codes. */
function spawnErrorText(code: string | undefined, cmd: string, message?: string): string {
  switch (code) {
    case "ENOENT":
      return existsSync(cmd)
        ? `cannot start ${cmd}: its interpreter (#! line) or a library it needs was not found`
        : `executable not found: ${cmd}`;
    case "EACCES":
      return `permission denied: cannot execute ${cmd}`;
    case "ENOEXEC":
      return `cannot start ${cmd}: not an executable format`;
    default:
      return `cannot start ${cmd}: ${message ?? code}`;
  }
}

/** "SIGTERM" for both `"SIGTERM"` and `15` (Bun types allow a number). */
/** Linux's first real-time signal as the C library counts it (glibc keeps 32 and 33 for itself). */
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/** `SIGKILL` for 9; real-time signals as `SIGRTMIN+n` (as `kill -l` names them); any other number as itself. */
export function signalName(sig: string | number): string {
  if (typeof sig === "string") return sig;
  const name = Object.entries(osConstants.signals).find(([, n]) => n === sig)?.[0];
  if (name !== undefined) return name;
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) return `SIGRTMIN+${sig - SIGRTMIN}`;
  return String(sig);
}

/**
 * The timers of one run, all cleared when it settles: `after` runs a callback
 * once, `delay` resolves after `ms` or at once on `clear`. (An AbortController
 * per run did the same with more work per task: bench/README.md, benchmark 1.)
 */
function createTimers() {
  /** Each pending timer with what `clear` calls for it. */
  const pending = new Map<ReturnType<typeof setTimeout>, () => void>();
  let cleared = false;
  const arm = (ms: number, fire: () => void, onClear: () => void): void => {
    const t = setTimeout(() => {
      pending.delete(t);
      fire();
    }, ms);
    pending.set(t, onClear);
  };
  return {
    after(ms: number, fn: () => void): void {
      if (!cleared) arm(ms, fn, () => {});
    },
    delay(ms: number): Promise<void> {
      if (cleared) return Promise.resolve();
      return new Promise<void>((resolve) => arm(ms, resolve, resolve));
    },
    clear(): void {
      cleared = true;
      for (const [t, onClear] of pending) {
        clearTimeout(t);
        onClear();
      }
      pending.clear();
    },
  };
}
