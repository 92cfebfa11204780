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
import { MAX_LABELS, parseTaskSpec } from "./validate-spec.ts";

/** A change on the task watch stream, numbered by a global monotonically increasing id. */
export type WatchEvent =
  | { type: "task"; task: Task }
  | { type: "deleted"; id: string; owner?: string; slot: string; labels: Record<string, string> }
  | { type: "lagged"; skipped: number };
export interface WatchRecord {
  id: number;
  event: WatchEvent;
}

/**
 * Bytes of task changes the watch stream keeps besides its count (`watchRetain`):
 * a spec may take up to 4 MiB, and 4096 changes of such tasks would hold
 * gigabytes (an audit reached 1.3 GiB with 250 of them).
 */
export const WATCH_RETAIN_BYTES = 32 * 1024 * 1024;
/** About how many bytes of changes a watcher is handed (and its transport writes) at once. */
export const WATCH_BATCH_BYTES = 1024 * 1024;

/**
 * Serialized size of specs and label sets in UTF-8, measured once per object
 * (what a watcher is sent; in memory a string outside Latin-1 takes 2 bytes a
 * character, which UTF-8 counts as 2 or more too).
 */
const jsonBytes = new WeakMap<object, number>();
function bytesOf(o: object): number {
  let n = jsonBytes.get(o);
  if (n === undefined) {
    n = Buffer.byteLength(JSON.stringify(o));
    jsonBytes.set(o, n);
  }
  return n;
}

/** The large part of a change that other changes may share: a task's spec (all its changes share it), a deleted task's labels. */
function sharedPart(e: WatchEvent): object | undefined {
  return e.type === "task" ? e.task.spec : e.type === "deleted" ? e.labels : undefined;
}

/** A change's own bytes besides its shared part: metadata, status (its error may be long), ids. */
function ownBytes(e: WatchEvent): number {
  return e.type === "task" ? 256 + (e.task.status.error?.length ?? 0) : 128;
}

/** About the size of a change as JSON, what a watcher is sent (batches). */
function watchEventSize(e: WatchEvent): number {
  const shared = sharedPart(e);
  return ownBytes(e) + (shared === undefined ? 0 : bytesOf(shared));
}

/**
 * Bytes the watch stream holds: each change's own bytes, and each shared part
 * (a spec, a label set) once however many retained changes refer to it — a
 * task with a big spec restarting every second must not push everyone else's
 * changes out, and changes of different big tasks must.
 */
function createWatchAccount() {
  const refs = new Map<object, number>();
  let bytes = 0;
  return {
    get bytes() {
      return bytes;
    },
    add(e: WatchEvent): void {
      bytes += ownBytes(e);
      const shared = sharedPart(e);
      if (shared === undefined) return;
      const n = refs.get(shared) ?? 0;
      if (n === 0) bytes += bytesOf(shared);
      refs.set(shared, n + 1);
    },
    remove(e: WatchEvent): void {
      bytes -= ownBytes(e);
      const shared = sharedPart(e);
      if (shared === undefined) return;
      const n = refs.get(shared) ?? 1;
      if (n > 1) refs.set(shared, n - 1);
      else {
        refs.delete(shared);
        bytes -= bytesOf(shared);
      }
    },
  };
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
  /** And at most about this many bytes of them (default {@link WATCH_RETAIN_BYTES}). */
  watchRetainBytes?: number;
  /** Lines of stdout/stderr returned by submit-and-wait (default 100). */
  outputTail?: number;
  onWatchLagged?: (skipped: number) => void;
  /** A submitted task became durable: its submit is about to be answered as accepted (metrics count it here). */
  onSubmitted?: (task: Task) => void;
  /**
   * Runs a task shows (`--max-runs`). The store trims a task's runs when it
   * launches another; a task stored under a higher cap shows only its newest
   * `maxRuns` until then (default: all stored).
   */
  maxRuns?: number;
}

/** The error of a task whose submit was answered with an error because the store failed. */
export const SUBMIT_NOT_DURABLE = "canceled: its submit failed (the store could not record it)";

/** Longest wait a client may ask for (10 minutes). */
export const MAX_WAIT_MS = 600_000;
/** Wait used when the client names none (30 seconds). */
export const DEFAULT_WAIT_MS = 30_000;

/** A wait's `timeoutMs` must be an integer 0..{@link MAX_WAIT_MS}; else `InvalidRequest`. */
export function checkWaitTimeout(timeoutMs: number): void {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_WAIT_MS) {
    throw invalid(`timeoutMs: must be an integer 0..${MAX_WAIT_MS}, got ${timeoutMs}`);
  }
}

/**
 * Filters a transport could pass that match nothing or mean nothing — an empty
 * slot, owner or label key (most often an unset variable: `?slot=`), a
 * negative time, more label keys than a task holds — are refused, on REST and
 * gRPC alike. (REST's parser refuses a malformed `label=k=v` and a negative
 * number in its own words first.)
 */
function checkFilters(f: { slot?: string; owner?: string; labels?: Record<string, string>; createdAfter?: number; createdBefore?: number }): void {
  for (const name of ["slot", "owner"] as const) {
    if (f[name] === "") throw invalid(`${name}: must not be empty (leave the parameter out instead)`);
  }
  if (f.labels && Object.hasOwn(f.labels, "")) throw invalid("labels: a key must not be empty");
  // More keys than a task can hold match nothing, and each is a term of the store's query (SQLite caps a query's depth).
  const filters = f.labels ? Object.keys(f.labels).length : 0;
  if (filters > MAX_LABELS) throw invalid(`label filters: at most ${MAX_LABELS} (a task holds at most ${MAX_LABELS} labels), got ${filters}`);
  for (const name of ["createdAfter", "createdBefore"] as const) {
    const v = f[name];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw invalid(`${name}: must be an integer 0..${Number.MAX_SAFE_INTEGER}, got ${v}`);
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
    get complete() {
      return inner.complete;
    },
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

/**
 * Meta key of the event numbering across agent lives: `{"clean":true,"watch":H}`
 * once the agent stopped cleanly (H = its last watch id, every log event
 * stored), `{"clean":false,"watch":R}` while it runs (R = the highest watch id
 * it may hand out before it writes a new value). Read and replaced at start.
 */
export const EVENT_IDS_META_KEY = "event_ids";

/**
 * Watch ids reserved at a time. The reservation is extended when half of it
 * is left, so a crash loses at most this many ids. Every watch event follows
 * a store write of its task in the same turn, and the store commits at least
 * every 1000 writes (and 2 ms after a write), so the extension is committed
 * long before the 2^15 ids left are used.
 */
export const WATCH_ID_RESERVATION = 2 ** 16;

interface IdState {
  clean: boolean;
  watch: number;
}

function readIdState(store: Store): IdState | undefined {
  const raw = store.getMeta(EVENT_IDS_META_KEY);
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as Partial<IdState>;
    if (typeof v.clean === "boolean" && Number.isSafeInteger(v.watch) && (v.watch as number) >= 0) return { clean: v.clean, watch: v.watch as number };
  } catch {
    // unreadable: as after a crash that left nothing to go by
  }
  return { clean: false, watch: 0 };
}

function writeIdState(store: Store, state: IdState): void {
  store.setMeta(EVENT_IDS_META_KEY, JSON.stringify(state));
}

/** Create the domain service over a supervisor and a store. */
export function createTaskService(deps: TaskServiceDeps): TaskService & { close(): void } {
  const { supervisor, store, hub, events } = deps;
  const waiters = new Map<string, Set<(task: Task | undefined) => void>>();
  const held = createWatchAccount();
  const maxHeld = deps.watchRetainBytes ?? WATCH_RETAIN_BYTES;
  const watchRing: EventRing<WatchEvent> = createEventRing<WatchEvent>({
    capacity: deps.watchRetain ?? 4096,
    sizeOf: watchEventSize,
    batchBytes: WATCH_BATCH_BYTES,
    full: () => held.bytes > maxHeld,
    onEvict: (e) => held.remove(e),
    lagged: (skipped) => ({ type: "lagged", skipped }),
    onLagged: deps.onWatchLagged,
    isMarker: (e) => e.type === "lagged",
  });

  /** Every append goes through here: the account first, then the ring (which evicts while it is full). */
  const appendWatch = (e: WatchEvent) => {
    held.add(e);
    watchRing.append([e]);
  };

  // Event ids continue across agent lives (CONTRACT §3, docs/api.md "Logs" and "Watch").
  const previous = readIdState(store);
  if (previous !== undefined) {
    // After a clean stop nothing was lost: a watcher's cursor from then is exact (older ones get lagged
    // with the exact count). After a crash ids up to the reservation may have been handed out for
    // changes no one will see again: a marker after them, so a watcher resuming from before gets one
    // lagged counting the ids it passes over.
    watchRing.skipTo(previous.watch + 1);
    if (!previous.clean) appendWatch({ type: "lagged", skipped: 1 });
  }
  // (No state: a new store, or one from a build that numbered from 1 at every start: from 1.)
  if (previous?.clean !== true) {
    // Tasks that were running or waiting to retry may have logged events the crash lost (a task
    // that never started has no events; a finished one had them all written when it finished).
    const started = store.activeTasks().filter((t) => t.status.attempt > 0);
    if (started.length > 0) hub.afterUncleanStop(started.map((t) => t.metadata.id));
  }
  let watchReserved = 0;
  let closedIds = false;
  function reserveWatchIds(): void {
    watchReserved = watchRing.nextId - 1 + WATCH_ID_RESERVATION;
    try {
      writeIdState(store, { clean: false, watch: watchReserved });
    } catch {
      // A failed store reports itself; nothing written from now on survives anyway.
    }
  }
  // Committed with recovery's writes, before the agent serves anyone.
  reserveWatchIds();

  function wake(id: string, task: Task | undefined): void {
    const set = waiters.get(id);
    if (!set) return;
    waiters.delete(id);
    for (const fn of set) fn(task);
  }

  function watchAppend(event: WatchEvent): void {
    appendWatch(event);
    if (watchRing.nextId > watchReserved - WATCH_ID_RESERVATION / 2) reserveWatchIds();
  }

  const unlisten = events.add({
    transition(task) {
      watchAppend({ type: "task", task });
      if (isTerminal(task.status.phase)) wake(task.metadata.id, task);
    },
    deleted(task) {
      watchAppend({ type: "deleted", id: task.metadata.id, owner: task.metadata.owner, slot: task.spec.slot, labels: task.spec.labels });
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
      checkFilters(query);
      const p = caller.principal;
      const q: TaskQuery = p && p.role !== "admin" ? { ...query, owner: p.name } : query;
      return store.listTasks(q);
    },

    runs(id, caller) {
      mustGet(id, caller);
      const stored = store.listRuns(id);
      const shown = deps.maxRuns !== undefined && stored.length > deps.maxRuns ? stored.slice(-deps.maxRuns) : stored;
      return shown.map(({ process: _p, stopping: _s, base: _b, restartedAfter: _r, retryAt: _t, failures: _f, ...run }) => run);
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
      // An aborted signal (the agent is shutting down, or the client left) answers the task as it is:
      // its "abort" event has fired already and would never come.
      if (isTerminal(task.status.phase) || timeoutMs === 0 || signal?.aborted) return task;
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
      checkFilters(opts);
      const sub = watchRing.subscribe({ after: opts.after, follow: true });
      return filterSubscription(sub, (rec) => watchVisible(rec, caller, opts));
    },

    close() {
      unlisten();
      watchRing.close();
      // The next agent continues right after the last watch id; after its log ids too when the hub
      // (closed first by the agent) stored every event and the store lost nothing.
      try {
        if (!closedIds) writeIdState(store, { clean: hub.closedClean && store.failure === undefined, watch: watchRing.nextId - 1 });
        closedIds = true;
      } catch {
        // A failed or closed store: the next agent takes this stop for a crash.
      }
      for (const id of [...waiters.keys()]) wake(id, lookup(id, {}));
    },
  };
  return service;
}
