/**
 * In-memory `Store`: the same semantics as the SQLite store without
 * durability, for `--data-dir :memory:` and tests. Everything is deep-copied
 * on the way in and out, so callers never alias stored objects.
 */
import { isTerminal, type LogRecord, type Task, type TaskQuery } from "../tasks/model.ts";
import { storeClosed, type Store, type StoreStats, type StoredRun } from "./store.ts";

interface Entry {
  task: Task;
  /** By attempt number. */
  runs: Map<number, StoredRun>;
  /** By log event id. */
  logs: Map<number, LogRecord>;
}

/** Create an empty in-memory store; `flush()` resolves at once. */
export function createMemoryStore(): Store {
  const entries = new Map<string, Entry>();
  const meta = new Map<string, string>();
  let closed = false;

  function live(): void {
    if (closed) throw storeClosed();
  }

  function matches(task: Task, q: TaskQuery): boolean {
    if (q.slot !== undefined && task.spec.slot !== q.slot) return false;
    if (q.status !== undefined && task.status.phase !== q.status) return false;
    if (q.owner !== undefined && task.metadata.owner !== q.owner) return false;
    if (q.createdAfter !== undefined && !(task.metadata.createdAt > q.createdAfter)) return false;
    if (q.createdBefore !== undefined && !(task.metadata.createdAt < q.createdBefore)) return false;
    if (q.labels) {
      const labels = task.spec.labels;
      for (const [k, v] of Object.entries(q.labels)) {
        if (!Object.hasOwn(labels, k) || labels[k] !== v) return false;
      }
    }
    return true;
  }

  return {
    kind: "memory",
    failure: undefined, // nothing to commit or sync: it cannot fail

    putTask(task) {
      live();
      const copy = structuredClone(task);
      const entry = entries.get(copy.metadata.id);
      if (entry) entry.task = copy;
      else entries.set(copy.metadata.id, { task: copy, runs: new Map(), logs: new Map() });
    },

    insertTask(task) {
      this.putTask(task);
    },

    getTask(id) {
      live();
      const entry = entries.get(id);
      return entry ? structuredClone(entry.task) : undefined;
    },

    getTaskJson(id) {
      live();
      const task = entries.get(id)?.task;
      return task ? { json: JSON.stringify(task), owner: task.metadata.owner } : undefined;
    },

    listTasks(query) {
      live();
      const found: Task[] = [];
      for (const { task } of entries.values()) if (matches(task, query)) found.push(task);
      found.sort(byCreation);
      if (query.order === "desc") found.reverse();
      const page = found.slice(query.offset, query.offset + query.limit);
      return { tasks: page.map((t) => structuredClone(t)), total: found.length };
    },

    activeTasks() {
      live();
      const active: Task[] = [];
      for (const { task } of entries.values()) {
        if (task.status.phase === "pending" || task.status.phase === "running") active.push(task);
      }
      return active.sort(byCreation).map((t) => structuredClone(t));
    },

    deleteTask(id) {
      live();
      entries.delete(id);
    },

    leftoverProcesses: [], // no journal: a memory store keeps nothing for the agent after it
    putRun(taskId, run) {
      live();
      entries.get(taskId)?.runs.set(run.attempt, structuredClone(run));
    },

    listRuns(taskId) {
      live();
      const runs = entries.get(taskId)?.runs;
      if (!runs) return [];
      return [...runs.values()].sort((a, b) => a.attempt - b.attempt).map((r) => structuredClone(r));
    },

    trimRuns(taskId, keep) {
      live();
      const runs = entries.get(taskId)?.runs;
      if (!runs) return;
      const attempts = [...runs.keys()].sort((a, b) => a - b);
      for (const attempt of attempts.slice(0, Math.max(0, attempts.length - Math.max(0, keep)))) runs.delete(attempt);
    },

    appendLogs(taskId, records) {
      live();
      const logs = entries.get(taskId)?.logs;
      if (!logs) return;
      for (const r of records) logs.set(r.id, structuredClone(r));
    },

    loadLogs(taskId, limit) {
      live();
      const logs = entries.get(taskId)?.logs;
      if (!logs || limit <= 0) return [];
      const sorted = [...logs.values()].sort((a, b) => a.id - b.id);
      return sorted.slice(Math.max(0, sorted.length - limit)).map((r) => structuredClone(r));
    },

    trimLogs(taskId, beforeId) {
      live();
      const logs = entries.get(taskId)?.logs;
      if (!logs) return;
      for (const id of logs.keys()) if (id < beforeId) logs.delete(id);
    },

    sweepCandidates(olderThan, keep, limit = Number.POSITIVE_INFINITY) {
      live();
      const terminal: Task[] = [];
      for (const { task } of entries.values()) if (isTerminal(task.status.phase)) terminal.push(task);
      terminal.sort(byFinish);
      // Both sets are prefixes of the finish order, so their union is the longer prefix.
      let expired = 0;
      while (expired < terminal.length && (terminal[expired]?.metadata.updatedAt ?? Infinity) < olderThan) expired++;
      const excess = Math.max(0, terminal.length - Math.max(0, keep));
      const candidates = Math.max(expired, excess);
      return { ids: terminal.slice(0, Math.min(candidates, limit)).map((t) => t.metadata.id), candidates, terminal: terminal.length };
    },

    getMeta(key) {
      live();
      return meta.get(key);
    },

    setMeta(key, value) {
      live();
      meta.set(key, value);
    },

    stats(): StoreStats {
      live();
      let runs = 0;
      let logEvents = 0;
      for (const e of entries.values()) {
        runs += e.runs.size;
        logEvents += e.logs.size;
      }
      return { tasks: entries.size, runs, logEvents };
    },

    flush() {
      return closed ? Promise.reject(storeClosed()) : Promise.resolve();
    },

    close() {
      closed = true;
      return Promise.resolve();
    },
  };
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Creation order: `createdAt`, then id (the SQL `ORDER BY created_at, id`). */
function byCreation(a: Task, b: Task): number {
  return a.metadata.createdAt - b.metadata.createdAt || compareIds(a.metadata.id, b.metadata.id);
}

/** Finish order of terminal tasks: `updatedAt`, then id. */
function byFinish(a: Task, b: Task): number {
  return a.metadata.updatedAt - b.metadata.updatedAt || compareIds(a.metadata.id, b.metadata.id);
}
