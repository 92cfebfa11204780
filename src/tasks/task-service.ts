/**
 * The domain service both transports call. It knows nothing of HTTP or gRPC.
 */
import type { Subscription } from "../logs/subscription.ts";
import type { AdmissionOutcome, Caller, LogRecord, Task, TaskQuery, TaskRun } from "./model.ts";
import { AgentError, invalid, taskNotFound } from "../errors.ts";
import { createEventRing, type EventRing } from "../logs/event-ring.ts";
import type { LogHub } from "../logs/log-hub.ts";
import type { Store } from "../store/store.ts";
import { isTerminal } from "./model.ts";
import type { Supervisor } from "./supervisor.ts";
import type { TaskEvents } from "./task-events.ts";
import { parseTaskSpec } from "./validate-spec.ts";

/** A change on the task watch stream, numbered by a global monotonically increasing id. */
export type WatchEvent =
  | { type: "task"; task: Task }
  | { type: "deleted"; id: string; owner?: string; slot: string; labels: Record<string, string> }
  | { type: "lagged"; skipped: number };
export interface WatchRecord {
  id: number;
  event: WatchEvent;
}

/** Submit-and-wait result: the final task, its runs and the tails of its output. */
export interface RunOutcome {
  task: Task;
  runs: TaskRun[];
  output: { stdout: string[]; stderr: string[] };
}

export interface TaskService {
  /** Validate `input` (REST-shaped spec JSON), admit it, and resolve once it is durable. */
  submit(input: unknown, caller: Caller): Promise<{ taskId: string; admission: AdmissionOutcome; task: Task }>;
  /**
   * Throws `PermissionDenied` when `caller` may not change tasks (a viewer). Every
   * change checks it first; a transport calls it before reading a request body,
   * so a viewer gets 403 whatever the body holds.
   */
  requireWrite(caller: Caller): void;
  /** The task, or `TaskNotFound` (also for a task the caller may not see). */
  get(id: string, caller: Caller): Task;
  /** `get` as JSON text (`JSON.stringify` of the task), for transports that only pass it on. */
  getJson(id: string, caller: Caller): string;
  /** Like `get` but `undefined` instead of throwing. */
  find(id: string, caller: Caller): Task | undefined;
  list(query: TaskQuery, caller: Caller): { tasks: Task[]; total: number };
  runs(id: string, caller: Caller): TaskRun[];
  /** Stop and purge; idempotent (unknown ids are fine). */
  delete(id: string, caller: Caller): Promise<void>;
  cancel(id: string, caller: Caller): Promise<Task>;
  start(id: string, caller: Caller): Promise<Task>;
  restart(id: string, caller: Caller): Promise<Task>;
  /** Resolve when the task is terminal or `timeoutMs` passed (then with its current state). */
  wait(id: string, timeoutMs: number, caller: Caller, signal?: AbortSignal): Promise<Task>;
  /** Submit, wait until terminal, return task + runs + output tails. */
  run(input: unknown, caller: Caller, timeoutMs: number, signal?: AbortSignal): Promise<RunOutcome>;
  /** Log subscription: retained events after `after`, then live ones unless `follow` is false. */
  logs(id: string, opts: { after?: number; follow: boolean }, caller: Caller): Subscription<LogRecord>;
  /** Task-change subscription; `after` resumes from a cursor. */
  watch(opts: { after?: number; slot?: string; labels?: Record<string, string> }, caller: Caller): Subscription<WatchRecord>;
}


export interface TaskServiceDeps {
  supervisor: Supervisor;
  store: Store;
  hub: LogHub;
  events: TaskEvents;
  /** How many task changes the watch stream keeps for resuming (default 4096). */
  watchRetain?: number;
  /** Lines of stdout/stderr returned by submit-and-wait (default 100). */
  outputTail?: number;
  onWatchLagged?: (skipped: number) => void;
  /** A submitted task became durable: its submit is about to be answered as accepted (metrics count it here). */
  onSubmitted?: (task: Task) => void;
}

/** The error of a task whose submit was answered with an error because the store failed. */
export const SUBMIT_NOT_DURABLE = "canceled: its submit failed (the store could not record it)";

/** Longest wait a client may ask for (10 minutes). */
export const MAX_WAIT_MS = 600_000;
/** Wait used when the client names none (30 seconds). */
export const DEFAULT_WAIT_MS = 30_000;

function checkWaitTimeout(timeoutMs: number): void {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_WAIT_MS) {
    throw invalid(`timeoutMs: must be an integer 0..${MAX_WAIT_MS}, got ${timeoutMs}`);
  }
}

function canSee(task: Task, caller: Caller): boolean {
  return ownerVisible(task.metadata.owner, caller);
}

function ownerVisible(owner: string | undefined, caller: Caller): boolean {
  const p = caller.principal;
  return !p || p.role === "admin" || owner === p.name;
}

function requireWrite(caller: Caller): void {
  if (caller.principal?.role === "viewer") {
    throw new AgentError("PermissionDenied", `principal ${caller.principal.name} (viewer) may not change tasks`);
  }
}

function watchVisible(rec: WatchRecord, caller: Caller, opts: { slot?: string; labels?: Record<string, string> }): boolean {
  const e = rec.event;
  if (e.type === "lagged") return true;
  const owner = e.type === "task" ? e.task.metadata.owner : e.owner;
  const slot = e.type === "task" ? e.task.spec.slot : e.slot;
  const labels = e.type === "task" ? e.task.spec.labels : e.labels;
  const p = caller.principal;
  if (p && p.role !== "admin" && owner !== p.name) return false;
  if (opts.slot !== undefined && slot !== opts.slot) return false;
  if (opts.labels) for (const [k, v] of Object.entries(opts.labels)) if (!Object.hasOwn(labels, k) || labels[k] !== v) return false;
  return true;
}

/** Wrap a subscription, keeping only the records `keep` accepts (empty batches are skipped). */
function filterSubscription<T>(inner: Subscription<T>, keep: (item: T) => boolean): Subscription<T> {
  return {
    close: () => inner.close(),
    [Symbol.dispose]: () => inner.close(),
    async *[Symbol.asyncIterator]() {
      try {
        for await (const batch of inner) {
          const kept = batch.filter(keep);
          if (kept.length > 0) yield kept;
        }
      } finally {
        inner.close();
      }
    },
  };
}

/** Create the domain service over a supervisor and a store. */
export function createTaskService(deps: TaskServiceDeps): TaskService & { close(): void } {
  const { supervisor, store, hub, events } = deps;
  const waiters = new Map<string, Set<(task: Task | undefined) => void>>();
  const watchRing: EventRing<WatchEvent> = createEventRing<WatchEvent>({
    capacity: deps.watchRetain ?? 4096,
    lagged: (skipped) => ({ type: "lagged", skipped }),
    onLagged: deps.onWatchLagged,
  });

  function wake(id: string, task: Task | undefined): void {
    const set = waiters.get(id);
    if (!set) return;
    waiters.delete(id);
    for (const fn of set) fn(task);
  }

  const unlisten = events.add({
    transition(task) {
      watchRing.append([{ type: "task", task }]);
      if (isTerminal(task.status.phase)) wake(task.metadata.id, task);
    },
    deleted(task) {
      watchRing.append([
        { type: "deleted", id: task.metadata.id, owner: task.metadata.owner, slot: task.spec.slot, labels: task.spec.labels },
      ]);
      wake(task.metadata.id, undefined);
    },
  });

  function lookup(id: string, caller: Caller): Task | undefined {
    const task = supervisor.activeTask(id) ?? store.getTask(id);
    return task && canSee(task, caller) ? task : undefined;
  }
  function mustGet(id: string, caller: Caller): Task {
    const task = lookup(id, caller);
    if (!task) throw taskNotFound(id);
    return task;
  }

  const service: TaskService & { close(): void } = {
    async submit(input, caller) {
      requireWrite(caller);
      const spec = parseTaskSpec(input);
      const { task, admission } = supervisor.submit(spec, caller.principal?.name);
      const id = task.metadata.id;
      try {
        await store.flush();
      } catch (err) {
        // The caller is told the submit failed (and may retry elsewhere): the task must not run on
        // here. It may have started already (admission is synchronous); it is canceled without waiting.
        void supervisor.cancel(id, SUBMIT_NOT_DURABLE).catch(() => {});
        throw err;
      }
      deps.onSubmitted?.(task);
      return { taskId: id, admission, task: supervisor.activeTask(id) ?? task };
    },

    requireWrite,

    get: mustGet,

    getJson(id, caller) {
      const active = supervisor.activeTask(id);
      if (active) {
        if (!canSee(active, caller)) throw taskNotFound(id);
        return JSON.stringify(active);
      }
      const stored = store.getTaskJson(id);
      if (!stored || !ownerVisible(stored.owner, caller)) throw taskNotFound(id);
      return stored.json;
    },
    find: lookup,

    list(query, caller) {
      const p = caller.principal;
      const q: TaskQuery = p && p.role !== "admin" ? { ...query, owner: p.name } : query;
      return store.listTasks(q);
    },

    runs(id, caller) {
      mustGet(id, caller);
      return store.listRuns(id).map(({ process: _p, stopping: _s, ...run }) => run);
    },

    async delete(id, caller) {
      requireWrite(caller);
      if (!lookup(id, caller)) return; // idempotent; another owner's task looks missing
      await supervisor.delete(id);
      await store.flush();
    },

    async cancel(id, caller) {
      requireWrite(caller);
      mustGet(id, caller);
      const task = await supervisor.cancel(id);
      if (!task) throw taskNotFound(id);
      await store.flush();
      return task;
    },

    async start(id, caller) {
      requireWrite(caller);
      mustGet(id, caller);
      const task = supervisor.start(id);
      if (!task) throw taskNotFound(id);
      await store.flush();
      return task;
    },

    async restart(id, caller) {
      requireWrite(caller);
      mustGet(id, caller);
      const task = supervisor.restart(id);
      if (!task) throw taskNotFound(id);
      await store.flush();
      return task;
    },

    async wait(id, timeoutMs, caller, signal) {
      checkWaitTimeout(timeoutMs);
      const task = mustGet(id, caller);
      if (isTerminal(task.status.phase) || timeoutMs === 0) return task;
      const { promise, resolve } = Promise.withResolvers<Task | undefined>();
      let set = waiters.get(id);
      if (!set) waiters.set(id, (set = new Set()));
      set.add(resolve);
      const timer = setTimeout(() => resolve(lookup(id, caller)), timeoutMs);
      const onAbort = () => resolve(lookup(id, caller));
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        const final = await promise;
        if (!final) throw taskNotFound(id);
        return final;
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        waiters.get(id)?.delete(resolve);
        if (waiters.get(id)?.size === 0) waiters.delete(id);
      }
    },

    async run(input, caller, timeoutMs, signal) {
      checkWaitTimeout(timeoutMs); // before the submit: a rejected call creates nothing
      const { taskId } = await service.submit(input, caller);
      const task = await service.wait(taskId, timeoutMs, caller, signal);
      const n = deps.outputTail ?? 100;
      return {
        task,
        runs: service.runs(taskId, caller),
        output: { stdout: hub.tail(taskId, "stdout", n), stderr: hub.tail(taskId, "stderr", n) },
      };
    },

    logs(id, opts, caller) {
      const task = mustGet(id, caller);
      return hub.subscribe(id, { ...opts, live: !isTerminal(task.status.phase) });
    },

    watch(opts, caller) {
      const sub = watchRing.subscribe({ after: opts.after, follow: true });
      return filterSubscription(sub, (rec) => watchVisible(rec, caller, opts));
    },

    close() {
      unlisten();
      watchRing.close();
      for (const id of [...waiters.keys()]) wake(id, lookup(id, {}));
    },
  };
  return service;
}
