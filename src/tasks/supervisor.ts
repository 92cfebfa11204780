/**
 * The supervisor: the single writer of task state.
 *
 * Every change is a transition: compute the new task → write it to the store
 * (synchronously, visible at once; durable at the next flush) → tell the
 * listeners. Admission decisions are taken in one synchronous step, so two
 * concurrent submits can never both start in one slot.
 *
 * Structures:
 * - lanes: (owner, slot) → holder (the one task that owns the slot, from start
 *   until it is terminal, backoff waits included) + FIFO of queued tasks. Each
 *   owner has slots of its own: admission never sees, drops behind, queues
 *   behind or replaces another owner's task (with auth off there is one owner);
 * - a priority heap of slot holders waiting for global capacity;
 * - per active task: its current run handle and timers.
 */
import { monotonicFactory } from "ulid";
import { AgentError, invalid } from "../errors.ts";
import type { LogHub } from "../logs/log-hub.ts";
import { prepareArgv, removeScript, type CommandResolver, type PreparedArgv } from "../runner/command-line.ts";
import { killLeftoverGroup, killRunSession } from "../runner/proc-stat.ts";
import type { LimitOutcome, ResourceLimiter } from "../runner/resource-limits.ts";
import { isOwnEnvironment, startRun, type RunHandle, type RunResult, type StopReason } from "../runner/run-process.ts";
import type { Store, StoredRun } from "../store/store.ts";
import { backoffDelay, remainingDelay } from "./backoff.ts";
import type { AdmissionOutcome, Phase, Task, TaskSpec, TaskStatus } from "./model.ts";
import { isTerminal } from "./model.ts";
import { createPriorityQueue } from "./priority-queue.ts";
import type { TaskEvents } from "./task-events.ts";

/** A lane per owner and slot: NUL cannot occur in a slot name, so keys of different owners never meet. */
function laneKey(owner: string | undefined, slot: string): string {
  return owner === undefined ? slot : `${owner}\u0000${slot}`;
}

/** Limits the supervisor enforces. */
export interface SupervisorLimits {
  maxConcurrent: number;
  maxQueuePerSlot: number;
  killGraceMs: number;
  maxLineBytes: number;
  maxRuns: number;
}

export interface SupervisorDeps {
  store: Store;
  hub: LogHub;
  events: TaskEvents;
  resolver: CommandResolver;
  scriptDir: string;
  limits: SupervisorLimits;
  /** Environment every task starts from (already stripped of the agent's secrets). */
  baseEnv: Record<string, string>;
  clock?: () => number;
  random?: () => number;
  newId?: () => string;
  run?: typeof startRun;
  /** Applies `spec.resources` to runs and rejects limits it cannot enforce; absent: resources are ignored. */
  limiter?: ResourceLimiter;
}

/** How much one `sweep` call may do (a task's deletion includes its runs and log rows). */
export interface SweepBatch {
  limit?: number;
  /** Stop after the deletion that passes this much time (`performance.now()`). */
  budgetMs?: number;
}

/** Counters for metrics and /api/v1/metrics. */
export interface SupervisorStats {
  active: number;
  running: number;
  /** Waiting behind another task of the same slot. */
  queued: number;
  /** Holding their slot, waiting for global capacity. */
  waitingCapacity: number;
  /** Waiting for a backoff or restart interval. */
  backoff: number;
  held: number;
}

export interface Supervisor {
  /** Store and admit a validated spec. Synchronous: the caller awaits `store.flush()` before answering. */
  submit(spec: TaskSpec, owner?: string): { task: Task; admission: AdmissionOutcome };
  /** Stop without purge; resolves with the final task (a terminal task is returned as is). `error`: the task's error (default `canceled`). */
  cancel(id: string, error?: string): Promise<Task | undefined>;
  /** Release a task submitted with `hold: true`; other tasks are returned unchanged. */
  start(id: string): Task | undefined;
  /** Run a terminal task again as a new attempt, history kept. */
  restart(id: string): Task | undefined;
  /** Stop and purge (idempotent). Resolves with the purged task, if there was one. */
  delete(id: string): Promise<Task | undefined>;
  /**
   * Close runs interrupted by a crash, kill their leftover groups, and queue
   * the stored work. Nothing launches until `resume()`: the agent binds its
   * ports in between, so a start that fails there leaves the pending work as
   * it was stored (no run started, no attempt spent).
   */
  recover(): void;
  /** Launch the work `recover()` queued, and from now on whatever becomes due. */
  resume(): void;
  /**
   * Purge terminal tasks older than `olderThan` or beyond `keep`, oldest
   * first: at most `batch.limit` of them, and none more once `batch.budgetMs`
   * have passed (defaults: all). Returns how many, how many terminal tasks
   * stay stored, and whether more are due (`more`: call again).
   */
  sweep(olderThan: number, keep: number, batch?: SweepBatch): { swept: number; terminal: number; more: boolean };
  /** The live snapshot of an active task (cheaper than the store). */
  activeTask(id: string): Task | undefined;
  stats(): SupervisorStats;
  /** Stop every run (TERM → grace → KILL); pending work stays stored for the next start. */
  shutdown(): Promise<void>;
  /**
   * During `shutdown()`: do not wait out the kill grace. SIGKILLs what is left
   * of every run (its process group and the rest of its session) now, and
   * again every {@link HURRY_REPEAT_MS} until the runs have ended, so that
   * what they forked meanwhile goes too. The runs are recorded as any stopped
   * by a shutdown.
   */
  hurry(): void;
}

/** How often `hurry()` kills again what runs still have left. */
const HURRY_REPEAT_MS = 100;

type Where = "held" | "slotQueue" | "capacity" | "launching" | "running" | "backoff" | "draining" | "done";

interface Active {
  task: Task;
  seq: number;
  failures: number;
  /** Attempts made before the task's last restart: `maxAttempts` counts the ones after it. */
  base: number;
  where: Where;
  run?: RunHandle;
  /** The record of the run in flight (launching or running). */
  runRec?: StoredRun;
  timer?: ReturnType<typeof setTimeout>;
  /** Set when the task is being stopped for good: canceled, replaced or deleted. */
  stopping?: { reason: StopReason; error: string };
  done: PromiseWithResolvers<void>;
}

interface Lane {
  holder?: string;
  queue: string[];
  /** Settles once every task stopped by `replace` in this slot has exited; no new run starts in the slot before. */
  exiting?: Promise<void>;
}

/** Create the supervisor. Nothing runs until `submit`/`recover` is called. */
export function createSupervisor(deps: SupervisorDeps): Supervisor {
  const { store, hub, events, limits } = deps;
  const clock = deps.clock ?? Date.now;
  const random = deps.random ?? Math.random;
  const ulid = monotonicFactory();
  const newId = deps.newId ?? (() => `tsk_${ulid()}`);
  const run = deps.run ?? startRun;
  // The base environment is often the agent's own (nothing filtered out): then a task without variables inherits it.
  const baseIsOwn = isOwnEnvironment(deps.baseEnv);

  const active = new Map<string, Active>();
  const lanes = new Map<string, Lane>();
  const waiting = createPriorityQueue();
  let running = 0;
  let seq = 0;
  let shuttingDown = false;
  /** `hurry()` was called: the shutdown kills instead of waiting out the grace. */
  let hurrying = false;
  /**
   * Set by `recover()` until `resume()`: queued work waits (see `Supervisor.recover`), so capacity is
   * handed out once all the stored work is queued, by priority.
   */
  let held = false;
  const inflight = new Set<Promise<void>>();

  /** The lane of `key` (see `laneKey`), made on first use. */
  function lane(key: string): Lane {
    let l = lanes.get(key);
    if (!l) {
      l = { queue: [] };
      lanes.set(key, l);
    }
    return l;
  }

  /** The one place a task changes. */
  function write(state: Active, status: TaskStatus, spec: TaskSpec = state.task.spec): Task {
    const prev = state.task.status.phase;
    const m = state.task.metadata;
    const task: Task = {
      metadata: { ...m, resourceVersion: m.resourceVersion + 1, updatedAt: clock() },
      spec,
      status,
    };
    state.task = task;
    store.putTask(task);
    events.transition(task, prev);
    return task;
  }

  function status(phase: Phase, attempt: number, exitCode?: number, error?: string): TaskStatus {
    const s: TaskStatus = { phase, attempt };
    if (exitCode !== undefined) s.exitCode = exitCode;
    if (error !== undefined) s.error = error;
    return s;
  }

  function newActive(task: Task): Active {
    const state: Active = { task, seq: seq++, failures: 0, base: 0, where: "held", done: Promise.withResolvers<void>() };
    active.set(task.metadata.id, state);
    return state;
  }

  /** Make a task terminal: release its slot, end its log stream, forget its runtime state. */
  function finish(state: Active, phase: Phase, exitCode?: number, error?: string): void {
    if (state.where === "done") return;
    clearTimeout(state.timer);
    waiting.remove(state.task.metadata.id);
    const id = state.task.metadata.id;
    const key = laneKey(state.task.metadata.owner, state.task.spec.slot);
    const l = lanes.get(key);
    if (l) {
      const qi = l.queue.indexOf(id);
      if (qi >= 0) l.queue.splice(qi, 1);
    }
    state.where = "done";
    write(state, status(phase, state.task.status.attempt, exitCode, error));
    active.delete(id);
    hub.end(id);
    state.done.resolve();
    if (l && l.holder === id) {
      l.holder = undefined;
      promote(key);
    }
    if (l && !l.holder && l.queue.length === 0 && !l.exiting) lanes.delete(key);
  }

  /** Give a free slot to the next queued task. */
  function promote(key: string): void {
    const l = lanes.get(key);
    if (!l || l.holder || shuttingDown) return;
    for (;;) {
      const next = l.queue.shift();
      if (next === undefined) return;
      const st = active.get(next);
      if (!st) continue;
      l.holder = next;
      startHolder(l, st);
      return;
    }
  }

  /** The slot holder may run once the slot's replaced tasks have exited. */
  function startHolder(l: Lane, state: Active): void {
    const exiting = l.exiting;
    if (!exiting) return enqueueForCapacity(state);
    state.where = "draining";
    void exiting.then(() => {
      if (state.where === "draining") enqueueForCapacity(state);
    });
  }

  function enqueueForCapacity(state: Active): void {
    if (shuttingDown) return;
    state.where = "capacity";
    waiting.push({ id: state.task.metadata.id, priority: state.task.spec.priority ?? 5, seq: state.seq });
    pump();
  }

  /**
   * Launch waiting tasks while there is capacity. None once the store has
   * failed: a run started then could not be recorded, and the restart that
   * brings the agent back would find its task pending and run it again.
   */
  function pump(): void {
    if (held) return;
    while (!shuttingDown && store.failure === undefined && running < limits.maxConcurrent) {
      const entry = waiting.pop();
      if (!entry) return;
      const st = active.get(entry.id);
      if (!st || st.where !== "capacity") continue;
      const p = launch(st);
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
  }

  async function launch(state: Active): Promise<void> {
    running++;
    state.where = "launching";
    const id = state.task.metadata.id;
    const spec = state.task.spec;
    const attempt = state.task.status.attempt + 1;
    const startedAt = clock();
    const runRec: StoredRun = state.base > 0 ? { attempt, phase: "running", startedAt, base: state.base } : { attempt, phase: "running", startedAt };
    state.runRec = runRec;
    write(state, status("running", attempt));
    // Room for this run (attempts number the runs from 1: fewer cannot overflow).
    if (attempt > limits.maxRuns) store.trimRuns(id, limits.maxRuns - 1);
    hub.runStarted(id, attempt, startedAt);
    events.runStarted(state.task, runRec);

    const sub = spec.kind.subprocess;
    // The run is stored once, with its process identity, right after the spawn: spawned on this
    // thread, in the same commit as the transition above, since nothing in between waits; from a
    // runner thread, as soon as the identity arrives (a crash in between finds the task running
    // without an open run: it is recovered as interrupted, its process is not killed). Writing a
    // script file does wait, so a script's run is also stored before (a crash then still finds it).
    if ("script" in sub.mode) store.putRun(id, runRec);
    // Never throws by contract; a throw anyway must fail this run, not leave it running for good.
    // The command is looked up as the run will see it: relative to its cwd, on the PATH its env gives it.
    const lookup = { cwd: sub.cwd, path: sub.env.findLast((kv) => kv.key === "PATH")?.value ?? deps.baseEnv.PATH };
    const prepared = await prepareArgv(sub.mode, { taskId: id, scriptDir: deps.scriptDir, resolver: deps.resolver, lookup }).catch(
      (err: unknown): PreparedArgv => ({ ok: false, error: `cannot prepare the command line: ${err instanceof Error ? err.message : String(err)}` }),
    );
    if (state.stopping || shuttingDown || !prepared.ok) {
      const error = prepared.ok ? undefined : prepared.error;
      const now = clock();
      const result: RunResult = error
        ? { spawnError: error, startedAt, finishedAt: now }
        : { stoppedBy: state.stopping?.reason ?? "shutdown", startedAt, finishedAt: now };
      finishRun(state, runRec, result);
      return;
    }
    let env: Record<string, string> | undefined;
    if (sub.env.length > 0 || !baseIsOwn) {
      env = { ...deps.baseEnv };
      for (const kv of sub.env) env[kv.key] = kv.value;
    }
    const limited = deps.limiter?.prepare(`${id}-${attempt}`, spec.resources);
    const handle = run({
      argv: limited ? limited.argv(prepared.argv) : prepared.argv,
      ...(limited ? { checkExec: prepared.argv[0] } : {}),
      env,
      cwd: sub.cwd,
      timeoutMs: spec.timeout,
      killGraceMs: spec.killGraceMs ?? limits.killGraceMs,
      maxLineBytes: limits.maxLineBytes,
      onLines(stream, lines, ts, bytes) {
        hub.lines(id, attempt, stream, lines, ts);
        events.output(stream, lines.length, bytes);
      },
    });
    state.run = handle;
    state.where = "running";
    // On a runner thread the identity arrives after the spawn; the result always comes later still.
    const proc = handle.process ?? (await handle.identified);
    if (proc) {
      runRec.process = proc;
      store.putRun(id, runRec);
    }
    const result = await handle.result;
    finishRun(state, runRec, limited ? { ...result, ...(await limited.finish(result)) } : result);
  }

  /** Record the end of a run and decide what happens next. */
  function finishRun(state: Active, runRec: StoredRun, result: RunResult & LimitOutcome): void {
    running--;
    state.run = undefined;
    state.runRec = undefined;
    const id = state.task.metadata.id;
    const spec = state.task.spec;
    const exitCode = result.exitCode;
    let phase: Phase;
    let error: string | undefined;
    if (result.spawnError !== undefined) {
      phase = "failed";
      error = result.spawnError;
    } else if (state.stopping) {
      phase = "canceled";
      error = state.stopping.error;
    } else if (result.stoppedBy === "shutdown") {
      phase = "failed";
      error = "interrupted: agent shut down";
    } else if (result.stoppedBy === "timeout") {
      phase = "timeout";
      error = `timed out after ${spec.timeout} ms`;
    } else if (result.limitError !== undefined) {
      phase = "failed";
      error = result.limitError;
    } else if (result.signal !== undefined) {
      phase = "failed";
      error = `killed by signal ${result.signal}`;
    } else if (exitCode !== undefined && exitCode !== 0 && spec.kind.subprocess.failOnNonZero) {
      phase = "failed";
      error = `exit code ${exitCode}`;
    } else {
      phase = "succeeded";
    }
    if (phase === "failed" && error !== undefined && result.limitNote !== undefined) error = `${error} (${result.limitNote})`;
    const { process: proc, stopping: _stopping, ...pub } = runRec;
    const finished: StoredRun = { ...pub, phase, finishedAt: result.finishedAt };
    if (proc) finished.process = proc;
    if (exitCode !== undefined) finished.exitCode = exitCode;
    if (error !== undefined) finished.error = error;
    hub.runFinished(id, runRec.attempt, exitCode, result.finishedAt);
    events.runFinished(state.task, finished);

    if (state.stopping) {
      store.putRun(id, finished);
      finish(state, "canceled", exitCode, state.stopping.error);
    } else decideNext(state, phase, exitCode, error, { run: finished, stored: false });
    pump();
  }

  /**
   * Apply the restart policy after an attempt. A retry's due time and the
   * failure count are stored on the attempt's record `ended.run` (when it
   * has one), so that a restart of the agent resumes the wait instead of
   * cutting it short. A record not `stored` yet is written here, once: with
   * the retry's due time when one follows, as it is otherwise.
   */
  function decideNext(
    state: Active,
    phase: Phase,
    exitCode: number | undefined,
    error: string | undefined,
    ended?: { run: StoredRun; stored: boolean },
  ): void {
    const spec = state.task.spec;
    const id = state.task.metadata.id;
    const success = phase === "succeeded";
    if (success) state.failures = 0;
    const r = spec.restart;
    const wantsMore = r.type === "always" || (r.type === "onFailure" && !success);
    const used = state.task.status.attempt - state.base;
    const exhausted = wantsMore && spec.maxAttempts !== undefined && used >= spec.maxAttempts;
    if (!wantsMore || exhausted) {
      if (ended && !ended.stored) store.putRun(id, ended.run);
      if (!exhausted) return finish(state, phase, exitCode, error);
      const last = error ?? phase;
      const since = state.base > 0 ? " since the restart" : "";
      return finish(state, "exhausted", exitCode, `exhausted: ${used} of ${spec.maxAttempts} attempts used${since} (last: ${last})`);
    }
    const delay = success && r.type === "always" ? r.intervalMs : backoffDelay(spec.backoff, state.failures++, random);
    if (ended) store.putRun(id, { ...ended.run, retryAt: clock() + delay, failures: state.failures });
    write(state, status("pending", state.task.status.attempt, exitCode, error));
    if (shuttingDown) {
      state.where = "backoff";
      return;
    }
    scheduleRetry(state, delay);
  }

  /** See `Supervisor.recover`: closes interrupted runs and queues the stored work without launching it. */
  function recoverStored(): void {
    const tasks = store.activeTasks();
    const now = clock();
    // Processes started just before the agent died, whose runs never reached a commit: no stored run names them.
    for (const p of store.leftoverProcesses) killLeftoverGroup(p);
    // Runs in flight when the agent died: close them, kill leftovers.
    const interrupted: { state: Active; run: StoredRun | undefined }[] = [];
    const pending: { state: Active; retryAt: number | undefined }[] = [];
    for (const task of tasks) {
      const id = task.metadata.id;
      const state = newActive(task);
      let wasRunning = task.status.phase === "running";
      let stopped: string | undefined;
      const runs = store.listRuns(id);
      // The restart budget in effect (see StoredRun.base): the newest run always says it.
      const newest = runs.at(-1);
      if (newest) state.base = newest.restartedAfter ? newest.attempt : (newest.base ?? 0);
      // The failures counted since the restart in effect, as the last retry scheduled after it stored them.
      state.failures = runs.findLast((r) => r.attempt > state.base && r.failures !== undefined)?.failures ?? 0;
      let closedRun: StoredRun | undefined;
      for (const r of runs) {
        if (r.finishedAt !== undefined) continue;
        wasRunning = true;
        if (r.process) killLeftoverGroup(r.process);
        const { stopping, ...rest } = r;
        // A run that was being stopped for good (its kill grace cut short by the crash) ends as the stop would have.
        const closed: StoredRun = stopping !== undefined
          ? { ...rest, phase: "canceled", finishedAt: now, error: stopping }
          : { ...rest, phase: "failed", finishedAt: now, error: "interrupted: agent restarted" };
        delete closed.exitCode;
        store.putRun(id, closed);
        hub.runFinished(id, r.attempt, undefined, now);
        if (stopping !== undefined) stopped = stopping;
        closedRun = closed;
      }
      if (stopped !== undefined) finish(state, "canceled", undefined, stopped);
      else if (wasRunning) interrupted.push({ state, run: closedRun });
      else pending.push({ state, retryAt: newest && newest.attempt > state.base ? newest.retryAt : undefined });
    }
    // Slots go to the tasks that held them: interrupted ones, then those waiting out a backoff or an
    // `always` interval (a slot is held through its waits). The others never ran since their admission
    // (submit, release of a hold, restart), which is their last write: they keep that order.
    pending.sort((x, y) => Number(y.retryAt !== undefined) - Number(x.retryAt !== undefined) || x.state.task.metadata.updatedAt - y.state.task.metadata.updatedAt);
    for (const { state, run } of interrupted) {
      const l = lane(laneKey(state.task.metadata.owner, state.task.spec.slot));
      if (!l.holder) l.holder = state.task.metadata.id;
      else {
        l.queue.push(state.task.metadata.id);
        state.where = "slotQueue";
      }
      if (l.holder === state.task.metadata.id) decideNext(state, "failed", undefined, "interrupted: agent restarted", run && { run, stored: true });
    }
    for (const { state, retryAt } of pending) {
      if (state.task.spec.hold) continue;
      const l = lane(laneKey(state.task.metadata.owner, state.task.spec.slot));
      const id = state.task.metadata.id;
      if (!l.holder) {
        l.holder = id;
        // A task that was waiting out a backoff or an `always` interval waits out the rest of it.
        const wait = retryAt === undefined ? 0 : remainingDelay(retryAt, now, longestDelay(state.task.spec));
        if (wait > 0) scheduleRetry(state, wait);
        else enqueueForCapacity(state);
      } else {
        state.where = "slotQueue";
        l.queue.push(id);
      }
    }
  }

  /** The longest wait `spec`'s restart policy can ask for between two attempts. */
  function longestDelay(spec: TaskSpec): number {
    return Math.max(spec.backoff.maxMs, spec.restart.type === "always" ? spec.restart.intervalMs : 0);
  }

  function scheduleRetry(state: Active, delay: number): void {
    state.where = "backoff";
    clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      if (state.where === "backoff") enqueueForCapacity(state);
    }, delay);
  }

  /**
   * New work is refused while the agent stops, and once the store has failed
   * (see `pump`): the caller gets 503 before any task is created or started.
   */
  function checkAccepting(): void {
    if (shuttingDown) throw new AgentError("Unavailable", "agent is shutting down");
    if (store.failure !== undefined) {
      throw new AgentError("Unavailable", "the agent's store has failed (see the agent's log): no work is accepted until the agent is restarted");
    }
  }

  /** A task about to enter a busy slot with `queue` admission needs room in the slot's bounded queue (else 503). */
  function checkQueueRoom(spec: TaskSpec, owner: string | undefined): void {
    const l = lanes.get(laneKey(owner, spec.slot));
    if (spec.admission === "queue" && l?.holder && l.queue.length >= limits.maxQueuePerSlot) {
      throw new AgentError("Unavailable", `queue of slot ${spec.slot} is full (${limits.maxQueuePerSlot} tasks)`);
    }
  }

  /** Decide admission for a task entering its slot. Synchronous. */
  function admit(state: Active): AdmissionOutcome {
    const spec = state.task.spec;
    const id = state.task.metadata.id;
    const key = laneKey(state.task.metadata.owner, spec.slot);
    const l = lane(key);
    if (!l.holder) {
      l.holder = id;
      startHolder(l, state);
      return state.where === "launching" ? "started" : "queued";
    }
    switch (spec.admission) {
      case "dropIfRunning":
        finish(state, "canceled", undefined, `dropped: slot ${spec.slot} busy with ${l.holder}`);
        return "dropped";
      case "queue":
        state.where = "slotQueue";
        l.queue.push(id);
        return "queued";
      case "replace": {
        const reason = `replaced by ${id}`;
        for (const qid of l.queue.splice(0)) {
          const q = active.get(qid);
          if (q) finish(q, "canceled", undefined, reason);
        }
        const old = active.get(l.holder);
        l.holder = id;
        if (old) {
          // Wait for this old task and for any replaced earlier that is still exiting.
          const prior = l.exiting;
          const stopped = stopForGood(old, "replaced", reason);
          const exiting: Promise<void> = prior ? Promise.all([prior, stopped]).then(() => {}) : stopped;
          l.exiting = exiting;
          void exiting.then(() => {
            if (l.exiting !== exiting) return;
            l.exiting = undefined;
            if (!l.holder && l.queue.length === 0 && lanes.get(key) === l) lanes.delete(key);
          });
        }
        startHolder(l, state);
        return "replaced";
      }
    }
  }

  /** Stop a task for good (cancel / replace / delete); resolves when it is terminal. */
  async function stopForGood(state: Active, reason: StopReason, error: string): Promise<void> {
    if (state.where === "done") return;
    if (!state.stopping) state.stopping = { reason, error };
    switch (state.where) {
      case "running":
        // The stop is made durable before the process hears of it: a crash inside the kill grace
        // must not bring the task back under its restart policy (recover() ends it canceled).
        if (state.runRec) {
          state.runRec.stopping = state.stopping.error;
          store.putRun(state.task.metadata.id, state.runRec);
        }
        void store.flush().catch(() => {}).then(() => state.run?.stop(reason));
        break;
      case "launching":
        break; // launch() checks `stopping` once the command is prepared
      case "held":
      case "slotQueue":
      case "capacity":
      case "backoff":
      case "draining":
        finish(state, "canceled", state.task.status.exitCode, error);
        break;
    }
    await state.done.promise;
  }

  return {
    submit(spec, owner) {
      checkAccepting();
      deps.limiter?.check(spec.resources);
      if (!spec.hold) checkQueueRoom(spec, owner);
      const now = clock();
      const id = newId();
      const metadata: Task["metadata"] = { id, resourceVersion: 1, createdAt: now, updatedAt: now };
      if (owner !== undefined) metadata.owner = owner;
      const task: Task = { metadata, spec, status: { phase: "pending", attempt: 0 } };
      store.insertTask(task);
      events.transition(task, undefined);
      const state = newActive(task);
      if (spec.hold) return { task: state.task, admission: "queued" };
      const admission = admit(state);
      return { task: state.task, admission };
    },

    async cancel(id, error = "canceled") {
      const state = active.get(id);
      if (!state) return store.getTask(id);
      await stopForGood(state, "canceled", error);
      return store.getTask(id);
    },

    start(id) {
      const state = active.get(id);
      if (!state) return store.getTask(id);
      if (state.where !== "held") return state.task;
      checkAccepting();
      checkQueueRoom(state.task.spec, state.task.metadata.owner);
      const { hold: _hold, ...rest } = state.task.spec;
      write(state, state.task.status, rest);
      admit(state);
      return state.task;
    },

    restart(id) {
      checkAccepting();
      if (active.has(id)) throw invalid(`task ${id} is not terminal; only a terminal task can be restarted`);
      const task = store.getTask(id);
      if (!task) return undefined;
      checkQueueRoom(task.spec, task.metadata.owner);
      const { hold: _hold, ...spec } = task.spec;
      const state = newActive(task);
      state.base = task.status.attempt; // a fresh budget of maxAttempts, history kept
      // Stored with the restart (same commit), so that the budget survives a stop before the next run.
      const newest = store.listRuns(id).at(-1);
      if (newest && !newest.restartedAfter) store.putRun(id, { ...newest, restartedAfter: true });
      hub.reopen(id);
      write(state, status("pending", task.status.attempt), spec);
      admit(state);
      return state.task;
    },

    async delete(id) {
      const state = active.get(id);
      if (state) await stopForGood(state, "deleted", "deleted");
      const task = store.getTask(id);
      if (!task) return undefined;
      store.deleteTask(id);
      hub.drop(id);
      removeScript(deps.scriptDir, id, task.spec.kind.subprocess.mode);
      events.deleted(task);
      return task;
    },

    recover() {
      held = true;
      recoverStored();
    },

    resume() {
      held = false;
      pump();
    },

    sweep(olderThan, keep, batch = {}) {
      const { ids, candidates, terminal } = store.sweepCandidates(olderThan, keep, batch.limit);
      const deadline = performance.now() + (batch.budgetMs ?? Number.POSITIVE_INFINITY);
      let swept = 0;
      let seen = 0;
      for (const id of ids) {
        seen++;
        if (active.has(id)) continue;
        const task = store.getTask(id);
        store.deleteTask(id);
        hub.drop(id);
        if (task) {
          removeScript(deps.scriptDir, id, task.spec.kind.subprocess.mode);
          events.deleted(task);
        }
        swept++;
        if (performance.now() >= deadline) break;
      }
      // More only when this batch made progress: candidates that stay (active ones) must not spin the caller.
      return { swept, terminal: terminal - swept, more: swept > 0 && candidates > seen };
    },

    activeTask(id) {
      return active.get(id)?.task;
    },

    stats() {
      const s: SupervisorStats = { active: active.size, running, queued: 0, waitingCapacity: 0, backoff: 0, held: 0 };
      for (const st of active.values()) {
        if (st.where === "slotQueue") s.queued++;
        else if (st.where === "capacity" || st.where === "draining") s.waitingCapacity++;
        else if (st.where === "backoff") s.backoff++;
        else if (st.where === "held") s.held++;
      }
      return s;
    },

    async shutdown() {
      shuttingDown = true;
      for (const st of active.values()) {
        clearTimeout(st.timer);
        if (st.where === "running" && st.run) void st.run.stop("shutdown");
      }
      await Promise.all([...inflight]);
    },

    hurry() {
      if (!shuttingDown || hurrying) return;
      hurrying = true;
      const killAll = () => {
        let left = false;
        for (const st of active.values()) {
          const proc = st.run?.process ?? st.runRec?.process;
          if (st.where !== "running" || proc === undefined) continue;
          killRunSession(proc);
          left = true;
        }
        if (left) setTimeout(killAll, HURRY_REPEAT_MS);
      };
      killAll();
    },
  };
}
