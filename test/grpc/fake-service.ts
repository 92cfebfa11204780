/**
 * An in-memory `TaskService` for transport tests: real spec validation
 * (`parseTaskSpec`, so messages match REST), the real log hub (so streams use
 * the same `Subscription` as SSE) and a watch ring, but no processes — tests
 * drive phases and log lines themselves.
 */
import { invalid, taskNotFound } from "../../src/errors.ts";
import { createEventRing } from "../../src/logs/event-ring.ts";
import { createLogHub, type LogHub } from "../../src/logs/log-hub.ts";
import type { Subscription } from "../../src/logs/subscription.ts";
import { isTerminal, type Phase, type Task, type TaskRun } from "../../src/tasks/model.ts";
import type { TaskService, WatchEvent, WatchRecord } from "../../src/tasks/task-service.ts";
import { parseTaskSpec } from "../../src/tasks/validate-spec.ts";

export interface FakeTaskService extends TaskService {
  readonly hub: LogHub;
  /** Every spec input `submit`/`run` received, in order (what the transport produced). */
  readonly inputs: unknown[];
  /** Watch subscriptions not yet closed. */
  openWatches(): number;
  /** Log subscriptions not yet closed. */
  openLogs(): number;
  /** Resolves once no log or watch subscription is open. */
  allClosed(): Promise<void>;
  /** Move a task to `phase` (a terminal phase also ends its log stream). */
  setPhase(id: string, phase: Phase, extra?: { exitCode?: number; error?: string }): Task;
  addRun(id: string, run: TaskRun): void;
  close(): void;
}

/** Create the fake; `clock` pins timestamps (default: a fixed instant). */
export function createFakeTaskService(clock: () => number = () => 1_712_750_400_000): FakeTaskService {
  const tasks = new Map<string, Task>();
  const runs = new Map<string, TaskRun[]>();
  const waiters = new Set<() => void>();
  const inputs: unknown[] = [];
  const hub = createLogHub({ retain: 1000 });
  const watchRing = createEventRing<WatchEvent>({ capacity: 1000, lagged: (skipped) => ({ type: "lagged", skipped }) });
  let seq = 0;
  let watches = 0;
  let logSubs = 0;
  const idle = new Set<() => void>();
  const counted = <T,>(inner: Subscription<T>, delta: (d: number) => void): Subscription<T> => {
    delta(1);
    let open = true;
    const close = () => {
      if (open) {
        open = false;
        delta(-1);
        if (watches + logSubs === 0) for (const f of [...idle]) f();
      }
      inner.close();
    };
    return {
      close,
      [Symbol.dispose]: close,
      get complete() {
        return inner.complete;
      },
      async *[Symbol.asyncIterator]() {
        try {
          yield* inner;
        } finally {
          close();
        }
      },
    };
  };

  const mustGet = (id: string): Task => {
    const t = tasks.get(id);
    if (!t) throw taskNotFound(id);
    return t;
  };
  const changed = (task: Task) => {
    watchRing.append([{ type: "task", task }]);
    for (const w of [...waiters]) w();
  };
  const update = (id: string, patch: (t: Task) => Task["status"]): Task => {
    const old = mustGet(id);
    const task: Task = {
      ...old,
      metadata: { ...old.metadata, resourceVersion: old.metadata.resourceVersion + 1, updatedAt: clock() },
      status: patch(old),
    };
    tasks.set(id, task);
    if (isTerminal(task.status.phase)) hub.end(id);
    changed(task);
    return task;
  };

  const service: FakeTaskService = {
    hub,
    inputs,
    openWatches: () => watches,
    openLogs: () => logSubs,
    allClosed() {
      if (watches + logSubs === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const f = () => {
          idle.delete(f);
          resolve();
        };
        idle.add(f);
      });
    },

    requireWrite() {},

    async submit(input) {
      inputs.push(input);
      const spec = parseTaskSpec(input);
      const id = `tsk_01JR${String(++seq).padStart(22, "0")}`;
      const now = clock();
      const task: Task = {
        metadata: { id, resourceVersion: 1, createdAt: now, updatedAt: now },
        spec,
        status: { phase: "pending", attempt: 0 },
      };
      tasks.set(id, task);
      runs.set(id, []);
      hub.reopen(id);
      changed(task);
      return { taskId: id, admission: "started", task };
    },
    get: (id) => mustGet(id),
    getJson: (id) => JSON.stringify(mustGet(id)),
    find: (id) => tasks.get(id),
    list(query) {
      let all = [...tasks.values()].filter(
        (t) =>
          (query.slot === undefined || t.spec.slot === query.slot) &&
          (query.status === undefined || t.status.phase === query.status) &&
          Object.entries(query.labels ?? {}).every(([k, v]) => t.spec.labels[k] === v),
      );
      if (query.order === "desc") all = all.reverse();
      return { tasks: all.slice(query.offset, query.offset + query.limit), total: all.length };
    },
    runs(id) {
      mustGet(id);
      return runs.get(id) ?? [];
    },
    async delete(id) {
      if (!tasks.delete(id)) return;
      runs.delete(id);
      hub.drop(id);
      watchRing.append([{ type: "deleted", id, slot: "", labels: {} }]);
    },
    async cancel(id) {
      return update(id, (t) => ({ ...t.status, phase: "canceled" }));
    },
    async start(id) {
      return update(id, (t) => ({ ...t.status, phase: "running", attempt: t.status.attempt + 1 }));
    },
    async restart(id) {
      const t = mustGet(id);
      if (!isTerminal(t.status.phase)) throw invalid(`task ${id} is not terminal (phase ${t.status.phase})`);
      hub.reopen(id);
      return update(id, (t) => ({ phase: "running", attempt: t.status.attempt + 1 }));
    },
    async wait(id, timeoutMs, _caller, signal) {
      if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 600_000) {
        throw invalid(`timeoutMs: must be an integer 0..600000, got ${timeoutMs}`);
      }
      if (isTerminal(mustGet(id).status.phase)) return mustGet(id);
      const { promise, resolve } = Promise.withResolvers<void>();
      const check = () => {
        if (!tasks.has(id) || isTerminal(mustGet(id).status.phase)) resolve();
      };
      waiters.add(check);
      const timer = setTimeout(resolve, timeoutMs);
      signal?.addEventListener("abort", () => resolve(), { once: true });
      try {
        await promise;
        return mustGet(id);
      } finally {
        clearTimeout(timer);
        waiters.delete(check);
      }
    },
    async run(input, caller) {
      const { taskId } = await service.submit(input, caller);
      hub.runStarted(taskId, 1, clock());
      hub.lines(taskId, 1, "stdout", ["hello"], clock());
      hub.runFinished(taskId, 1, 0, clock());
      service.addRun(taskId, { attempt: 1, phase: "succeeded", startedAt: clock(), finishedAt: clock(), exitCode: 0 });
      const task = service.setPhase(taskId, "succeeded", { exitCode: 0 });
      return { task, runs: service.runs(taskId, caller), output: { stdout: hub.tail(taskId, "stdout", 100), stderr: [] } };
    },
    logs(id, opts) {
      const task = mustGet(id);
      return counted(hub.subscribe(id, { ...opts, live: !isTerminal(task.status.phase) }), (d) => (logSubs += d));
    },
    watch(opts) {
      const inner = watchRing.subscribe({ after: opts.after, follow: true });
      const filtered: Subscription<WatchRecord> = {
        close: () => inner.close(),
        [Symbol.dispose]: () => inner.close(),
        async *[Symbol.asyncIterator]() {
          for await (const batch of inner) {
            const kept = batch.filter((r) => opts.slot === undefined || r.event.type !== "task" || r.event.task.spec.slot === opts.slot);
            if (kept.length > 0) yield kept;
          }
        },
      };
      return counted(filtered, (d) => (watches += d));
    },
    setPhase(id, phase, extra = {}) {
      return update(id, (t) => ({ ...t.status, phase, attempt: Math.max(1, t.status.attempt), ...extra }));
    },
    addRun(id, run) {
      runs.get(id)?.push(run);
    },
    close() {
      hub.close();
      watchRing.close();
    },
  };
  return service;
}
