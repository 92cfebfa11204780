/**
 * One suite, two implementations: every Store method and every TaskQuery
 * filter behaves the same on the memory store and on the SQLite store.
 * Nothing here awaits flush() before reading: reads must see writes at once.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createMemoryStore } from "../../src/store/memory-store.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { Store, StoredRun } from "../../src/store/store.ts";
import type { LogRecord, Task, TaskQuery } from "../../src/tasks/model.ts";
import { idsOf, makeTask } from "./make-task.ts";
import { tempDir, type TempDir } from "./temp-dir.ts";

interface Subject {
  store: Store;
  dispose(): Promise<void>;
}

const implementations: [string, () => Subject][] = [
  [
    "memory",
    () => {
      const store = createMemoryStore();
      return { store, dispose: () => store.close() };
    },
  ],
  [
    "sqlite",
    () => {
      const dir: TempDir = tempDir();
      const store = createSqliteStore({ path: join(dir.path, "tasklane.db") });
      return {
        store,
        async dispose() {
          await store.close();
          dir[Symbol.dispose]();
        },
      };
    },
  ],
];

const WEIRD_KEY = 'app.kubernetes.io/"name"';

/** Inserted in this (scrambled) order; creation order is t01 t02 t08 t03 t04 t05 t06 t07. */
const catalog = [
  makeTask({ id: "t05", slot: "a", phase: "succeeded", owner: "bob", createdAt: 4000, labels: { env: "prod", team: "edge" } }),
  makeTask({ id: "t08", slot: "b", phase: "pending", owner: "bob", createdAt: 2000, labels: { env: "dev" } }),
  makeTask({ id: "t01", slot: "a", phase: "pending", owner: "alice", createdAt: 1000, labels: { env: "prod", team: "core" } }),
  makeTask({ id: "t07", slot: "a", phase: "succeeded", owner: "alice", createdAt: 6000, labels: { env: "prod", team: "core" } }),
  makeTask({ id: "t04", slot: "b", phase: "failed", createdAt: 3000 }),
  makeTask({ id: "t03", slot: "b", phase: "succeeded", owner: "alice", createdAt: 3000, labels: { env: "dev", team: "core" } }),
  makeTask({ id: "t06", slot: "c", phase: "canceled", owner: "alice", createdAt: 5000, labels: { team: "core", [WEIRD_KEY]: "x" } }),
  makeTask({ id: "t02", slot: "a", phase: "running", owner: "bob", createdAt: 2000, labels: { env: "prod" } }),
];

/** The catalog task with this id. */
function cat(id: string): Task {
  const task = catalog.find((t) => t.metadata.id === id);
  if (!task) throw new Error(`no catalog task ${id}`);
  return task;
}

function query(q: Partial<TaskQuery>): TaskQuery {
  return { order: "asc", limit: 100, offset: 0, ...q };
}

const filterCases: [string, Partial<TaskQuery>, string[]][] = [
  ["no filter", {}, ["t01", "t02", "t08", "t03", "t04", "t05", "t06", "t07"]],
  ["order desc", { order: "desc" }, ["t07", "t06", "t05", "t04", "t03", "t08", "t02", "t01"]],
  ["slot", { slot: "a" }, ["t01", "t02", "t05", "t07"]],
  ["unknown slot", { slot: "zz" }, []],
  ["status", { status: "succeeded" }, ["t03", "t05", "t07"]],
  ["status + slot", { status: "succeeded", slot: "a" }, ["t05", "t07"]],
  ["status + slot desc", { status: "succeeded", slot: "a", order: "desc" }, ["t07", "t05"]],
  ["owner", { owner: "alice" }, ["t01", "t03", "t06", "t07"]],
  ["one label", { labels: { env: "prod" } }, ["t01", "t02", "t05", "t07"]],
  ["two labels (AND)", { labels: { env: "prod", team: "core" } }, ["t01", "t07"]],
  ["two labels, other values", { labels: { team: "core", env: "dev" } }, ["t03"]],
  ["label value mismatch", { labels: { env: "staging" } }, []],
  ["label key with dots and quotes", { labels: { [WEIRD_KEY]: "x" } }, ["t06"]],
  ["label, desc", { labels: { env: "prod" }, order: "desc" }, ["t07", "t05", "t02", "t01"]],
  ["label + created window", { labels: { team: "core" }, createdAfter: 1000, createdBefore: 6000 }, ["t03", "t06"]],
  ["two labels + createdAfter", { labels: { team: "core", env: "prod" }, createdAfter: 1000 }, ["t07"]],
  ["label + status", { labels: { env: "prod" }, status: "succeeded" }, ["t05", "t07"]],
  ["label + owner, desc", { labels: { team: "core" }, owner: "alice", order: "desc" }, ["t07", "t06", "t03", "t01"]],
  ["label + slot + created window", { labels: { env: "prod" }, slot: "a", createdAfter: 1000, createdBefore: 6000 }, ["t02", "t05"]],
  ["empty labels", { labels: {} }, ["t01", "t02", "t08", "t03", "t04", "t05", "t06", "t07"]],
  ["createdAfter is exclusive", { createdAfter: 2000 }, ["t03", "t04", "t05", "t06", "t07"]],
  ["createdBefore is exclusive", { createdBefore: 3000 }, ["t01", "t02", "t08"]],
  ["created window", { createdAfter: 1000, createdBefore: 4000 }, ["t02", "t08", "t03", "t04"]],
  [
    "every filter at once",
    { slot: "b", status: "pending", owner: "bob", labels: { env: "dev" }, createdAfter: 1000, createdBefore: 3000 },
    ["t08"],
  ],
];

const pageCases: [string, Partial<TaskQuery>, string[], number][] = [
  ["first page", { limit: 3 }, ["t01", "t02", "t08"], 8],
  ["middle page", { limit: 3, offset: 3 }, ["t03", "t04", "t05"], 8],
  ["last, short page", { limit: 3, offset: 6 }, ["t06", "t07"], 8],
  ["offset at the end", { limit: 3, offset: 8 }, [], 8],
  ["offset past the end", { limit: 3, offset: 20 }, [], 8],
  ["desc page", { order: "desc", limit: 2, offset: 1 }, ["t06", "t05"], 8],
  ["filtered page", { slot: "a", limit: 2, offset: 1 }, ["t02", "t05"], 4],
  ["label page", { labels: { team: "core" }, limit: 2, offset: 1 }, ["t03", "t06"], 4],
  ["label page past the end", { labels: { team: "core" }, limit: 2, offset: 4 }, [], 4],
  ["label + status page, desc", { labels: { env: "prod" }, status: "succeeded", order: "desc", limit: 1, offset: 1 }, ["t05"], 2],
  ["limit 0 still counts", { limit: 0 }, [], 8],
  ["empty result", { owner: "nobody", limit: 3, offset: 3 }, [], 0],
];

function run(attempt: number, extra: Partial<StoredRun> = {}): StoredRun {
  return { attempt, phase: "failed", startedAt: 10_000 + attempt, finishedAt: 20_000 + attempt, exitCode: 1, ...extra };
}

function logs(from: number, to: number): LogRecord[] {
  const out: LogRecord[] = [];
  for (let id = from; id <= to; id++) {
    out.push({ id, event: { type: "chunk", attempt: 1, stream: id % 2 ? "stdout" : "stderr", seq: id, ts: 5000 + id, line: `line ${id}` } });
  }
  return out;
}

describe.each(implementations)("%s store", (_name, create) => {
  let subject: Subject;
  let store: Store;
  beforeEach(() => {
    subject = create();
    store = subject.store;
  });
  afterEach(() => subject.dispose());

  test("a closed store (the agent stopping) refuses with Unavailable, not an internal error", async () => {
    store.putTask(makeTask({ id: "tsk_1" }));
    await store.close();
    const unavailable = { code: "Unavailable", message: "agent is shutting down (its store is closed)" };
    expect(() => store.getTask("tsk_missing")).toThrow(expect.objectContaining(unavailable));
    expect(() => store.listTasks({ limit: 10, offset: 0, order: "desc" })).toThrow(expect.objectContaining(unavailable));
    await expect(store.flush()).rejects.toMatchObject(unavailable);
  });

  describe("tasks", () => {
    test("putTask then getTask returns the whole task; unknown ids are undefined", () => {
      const task = makeTask({ id: "tsk_1", owner: "alice", labels: { env: "prod" } });
      store.putTask(task);
      expect(store.getTask("tsk_1")).toEqual(task);
      expect(store.getTask("tsk_missing")).toBeUndefined();
    });

    test("getTaskJson is the stored task's JSON text with its owner, and follows replacement and deletion", () => {
      const task = makeTask({ id: "tsk_1", owner: "alice", labels: { env: "prod" } });
      store.putTask(task);
      expect(store.getTaskJson("tsk_1")).toEqual({ json: JSON.stringify(task), owner: "alice" });
      const next = makeTask({ id: "tsk_1", phase: "succeeded", labels: { env: "prod" } });
      store.putTask(next);
      const got = store.getTaskJson("tsk_1");
      expect(got).toEqual({ json: JSON.stringify(next), owner: undefined });
      expect(JSON.parse(got!.json)).toEqual(store.getTask("tsk_1")!);
      store.deleteTask("tsk_1");
      expect(store.getTaskJson("tsk_1")).toBeUndefined();
      expect(store.getTaskJson("tsk_missing")).toBeUndefined();
    });

    test("putTask replaces by id, and every indexed field follows the new version", () => {
      store.putTask(makeTask({ id: "tsk_1", slot: "a", phase: "pending", owner: "alice", labels: { env: "prod", tier: "1" } }));
      const updated = makeTask({ id: "tsk_1", slot: "b", phase: "succeeded", owner: "bob", createdAt: 42, labels: { env: "dev" } });
      store.putTask(updated);
      expect(store.getTask("tsk_1")).toEqual(updated);
      expect(store.stats()).toEqual({ tasks: 1, runs: 0, logEvents: 0 });
      expect(store.listTasks(query({ labels: { env: "prod" } }))).toEqual({ tasks: [], total: 0 });
      expect(store.listTasks(query({ labels: { tier: "1" } }))).toEqual({ tasks: [], total: 0 });
      expect(store.listTasks(query({ slot: "a" }))).toEqual({ tasks: [], total: 0 });
      expect(store.listTasks(query({ labels: { env: "dev" }, createdAfter: 42 }))).toEqual({ tasks: [], total: 0 });
      expect(store.listTasks(query({ labels: { env: "dev" }, createdBefore: 43 }))).toEqual({ tasks: [updated], total: 1 });
      const hit = query({ labels: { env: "dev" }, slot: "b", status: "succeeded", owner: "bob", createdBefore: 43 });
      expect(store.listTasks(hit)).toEqual({ tasks: [updated], total: 1 });
    });

    test("insertTask stores a new task like putTask, with or without labels", () => {
      const plain = makeTask({ id: "tsk_new", slot: "s", phase: "pending", owner: "alice", labels: {} });
      const labelled = makeTask({ id: "tsk_lab", slot: "s", phase: "pending", labels: { env: "prod" } });
      store.insertTask(plain);
      store.insertTask(labelled);
      expect(store.getTask("tsk_new")).toEqual(plain);
      expect(store.getTaskJson("tsk_new")).toEqual({ json: JSON.stringify(plain), owner: "alice" });
      expect(store.listTasks(query({ slot: "s", owner: "alice" }))).toEqual({ tasks: [plain], total: 1 });
      expect(store.listTasks(query({ labels: { env: "prod" } }))).toEqual({ tasks: [labelled], total: 1 });
      // A state change afterwards goes the usual way.
      const running = { ...plain, status: { phase: "running" as const, attempt: 1 } };
      store.putTask(running);
      expect(store.listTasks(query({ status: "running" }))).toEqual({ tasks: [running], total: 1 });
    });

    test("insertTask of an id that is stored after all replaces it and its labels, as putTask does", () => {
      store.putTask(makeTask({ id: "tsk_1", slot: "a", labels: { env: "prod" } }));
      const again = makeTask({ id: "tsk_1", slot: "b", labels: {} });
      store.insertTask(again);
      expect(store.getTask("tsk_1")).toEqual(again);
      expect(store.listTasks(query({ labels: { env: "prod" } }))).toEqual({ tasks: [], total: 0 });
      expect(store.stats().tasks).toBe(1);
    });

    test("a new createdAt with unchanged labels still moves the task in label queries", () => {
      store.putTask(makeTask({ id: "tsk_1", createdAt: 100, labels: { env: "x" } }));
      const moved = makeTask({ id: "tsk_1", createdAt: 200, labels: { env: "x" } });
      store.putTask(moved);
      expect(store.listTasks(query({ labels: { env: "x" }, createdAfter: 150 }))).toEqual({ tasks: [moved], total: 1 });
      expect(store.listTasks(query({ labels: { env: "x" }, createdBefore: 150 }))).toEqual({ tasks: [], total: 0 });
    });

    test("stored objects cannot be aliased by callers", () => {
      const task = makeTask({ id: "tsk_1", labels: { env: "prod" } });
      store.putTask(task);
      task.spec.labels.env = "mutated";
      task.status.phase = "failed";
      const first = store.getTask("tsk_1");
      if (!first) throw new Error("task missing");
      first.status.attempt = 99;
      const firstListed = store.listTasks(query({})).tasks[0];
      if (!firstListed) throw new Error("task missing");
      firstListed.metadata.owner = "mallory";
      expect(store.getTask("tsk_1")).toEqual(makeTask({ id: "tsk_1", labels: { env: "prod" } }));

      const r = run(1, { process: { pid: 10, pgid: 10 } });
      store.putRun("tsk_1", r);
      r.phase = "succeeded";
      const listed = store.listRuns("tsk_1")[0];
      if (!listed) throw new Error("run missing");
      listed.exitCode = 77;
      expect(store.listRuns("tsk_1")).toEqual([run(1, { process: { pid: 10, pgid: 10 } })]);

      const records = logs(1, 1);
      store.appendLogs("tsk_1", records);
      const rec = records[0];
      if (rec?.event.type === "chunk") rec.event.line = "changed";
      expect(store.loadLogs("tsk_1", 10)).toEqual(logs(1, 1));
    });

    test("listTasks returns whole tasks in creation order", () => {
      for (const t of catalog) store.putTask(t);
      expect(store.listTasks(query({ limit: 3 }))).toEqual({ tasks: [cat("t01"), cat("t02"), cat("t08")], total: 8 });
    });

    test.each(filterCases)("listTasks filter: %s", (_case, q, ids) => {
      for (const t of catalog) store.putTask(t);
      const result = store.listTasks(query(q));
      expect({ ids: idsOf(result.tasks), total: result.total }).toEqual({ ids, total: ids.length });
    });

    test.each(pageCases)("listTasks paging: %s", (_case, q, ids, total) => {
      for (const t of catalog) store.putTask(t);
      const result = store.listTasks(query(q));
      expect({ ids: idsOf(result.tasks), total: result.total }).toEqual({ ids, total });
    });

    test("activeTasks: pending and running only, oldest first (createdAt, then id)", () => {
      for (const t of catalog) store.putTask(t);
      expect(idsOf(store.activeTasks())).toEqual(["t01", "t02", "t08"]);
      store.putTask(makeTask({ id: "t02", slot: "a", phase: "succeeded", createdAt: 2000 }));
      expect(store.activeTasks()).toEqual([cat("t01"), cat("t08")]);
    });

    test("deleteTask removes the task with its runs, logs and labels; other tasks keep theirs", () => {
      store.putTask(makeTask({ id: "gone", labels: { env: "prod" } }));
      store.putTask(makeTask({ id: "kept", labels: { env: "prod" } }));
      for (const id of ["gone", "kept"]) {
        store.putRun(id, run(1));
        store.putRun(id, run(2));
        store.appendLogs(id, logs(1, 3));
      }
      store.deleteTask("gone");
      expect(store.getTask("gone")).toBeUndefined();
      expect(store.listRuns("gone")).toEqual([]);
      expect(store.loadLogs("gone", 10)).toEqual([]);
      expect(idsOf(store.listTasks(query({ labels: { env: "prod" } })).tasks)).toEqual(["kept"]);
      expect(store.listRuns("kept")).toEqual([run(1), run(2)]);
      expect(store.stats()).toEqual({ tasks: 1, runs: 2, logEvents: 3 });
      store.deleteTask("gone");
      store.deleteTask("never-existed");
      expect(store.stats()).toEqual({ tasks: 1, runs: 2, logEvents: 3 });
    });

    test("a deleted id can be reused without inheriting anything", () => {
      store.putTask(makeTask({ id: "t", labels: { a: "1" } }));
      store.putRun("t", run(1));
      store.deleteTask("t");
      const fresh = makeTask({ id: "t", labels: { b: "2" } });
      store.putTask(fresh);
      expect(store.listRuns("t")).toEqual([]);
      expect(store.listTasks(query({ labels: { a: "1" } }))).toEqual({ tasks: [], total: 0 });
      expect(store.listTasks(query({ labels: { b: "2" } }))).toEqual({ tasks: [fresh], total: 1 });
    });
  });

  describe("runs", () => {
    beforeEach(() => store.putTask(makeTask({ id: "t" })));

    test("listRuns is ordered by attempt whatever the insertion order, with the process identity", () => {
      const withProcess = run(2, { phase: "running", finishedAt: undefined, exitCode: undefined, process: { pid: 4242, pgid: 4242, startTime: "987654" } });
      store.putRun("t", run(3));
      store.putRun("t", withProcess);
      store.putRun("t", run(1, { error: "interrupted: agent restarted" }));
      expect(store.listRuns("t")).toEqual([run(1, { error: "interrupted: agent restarted" }), withProcess, run(3)]);
    });

    test("putRun with an existing attempt replaces it", () => {
      store.putRun("t", run(1, { phase: "running" }));
      store.putRun("t", run(1, { phase: "succeeded", exitCode: 0 }));
      expect(store.listRuns("t")).toEqual([run(1, { phase: "succeeded", exitCode: 0 })]);
      expect(store.stats()).toEqual({ tasks: 1, runs: 1, logEvents: 0 });
    });

    test("trimRuns keeps the newest attempts", () => {
      for (const a of [1, 2, 3, 4, 5]) store.putRun("t", run(a));
      store.trimRuns("t", 10);
      expect(store.listRuns("t").map((r) => r.attempt)).toEqual([1, 2, 3, 4, 5]);
      store.trimRuns("t", 2);
      expect(store.listRuns("t")).toEqual([run(4), run(5)]);
      store.trimRuns("t", 0);
      expect(store.listRuns("t")).toEqual([]);
    });

    test("runs of an unknown task are ignored", () => {
      store.putRun("nope", run(1));
      store.trimRuns("nope", 0);
      expect(store.listRuns("nope")).toEqual([]);
      expect(store.stats()).toEqual({ tasks: 1, runs: 0, logEvents: 0 });
    });
  });

  describe("logs", () => {
    beforeEach(() => store.putTask(makeTask({ id: "t" })));

    test("loadLogs returns the newest records, oldest first", () => {
      const all: LogRecord[] = [
        { id: 1, event: { type: "runStarted", attempt: 1, startedAt: 100 } },
        ...logs(2, 5),
        { id: 6, event: { type: "lagged", skipped: 3 } },
        { id: 7, event: { type: "runFinished", attempt: 1, exitCode: 0, finishedAt: 200 } },
      ];
      store.appendLogs("t", all.slice(0, 4));
      store.appendLogs("t", []);
      store.appendLogs("t", all.slice(4));
      expect(store.loadLogs("t", 3)).toEqual(all.slice(4));
      expect(store.loadLogs("t", 100)).toEqual(all);
      expect(store.loadLogs("t", 0)).toEqual([]);
      expect(store.stats()).toEqual({ tasks: 1, runs: 0, logEvents: 7 });
    });

    test("trimLogs drops records below the id", () => {
      store.appendLogs("t", logs(1, 6));
      store.trimLogs("t", 4);
      expect(store.loadLogs("t", 100)).toEqual(logs(4, 6));
      store.trimLogs("t", 1);
      expect(store.loadLogs("t", 100)).toEqual(logs(4, 6));
    });

    test("appends of every size round-trip in order (one row, small batches, full batches and the rest)", () => {
      let next = 1;
      for (const n of [1, 2, 16, 17, 64, 65, 130, 3]) {
        store.appendLogs("t", logs(next, next + n - 1));
        next += n;
      }
      expect(store.loadLogs("t", 1000)).toEqual(logs(1, next - 1));
    });

    test("appending ids that are stored already replaces just those records", () => {
      const mark = (from: number, to: number, tag: string): LogRecord[] =>
        logs(from, to).map((r) => ({ id: r.id, event: { ...r.event, line: `${tag}${r.id}` } as LogRecord["event"] }));
      store.appendLogs("t", mark(1, 10, "a"));
      store.appendLogs("t", mark(4, 6, "b")); // inside one stored batch
      expect(store.loadLogs("t", 100)).toEqual([...mark(1, 3, "a"), ...mark(4, 6, "b"), ...mark(7, 10, "a")]);
      store.appendLogs("t", mark(5, 12, "c")); // the end of one, the whole of another, and new ids
      expect(store.loadLogs("t", 100)).toEqual([...mark(1, 3, "a"), ...mark(4, 4, "b"), ...mark(5, 12, "c")]);
      store.appendLogs("t", mark(1, 2, "d")); // the start of one
      expect(store.loadLogs("t", 100)).toEqual([...mark(1, 2, "d"), ...mark(3, 3, "a"), ...mark(4, 4, "b"), ...mark(5, 12, "c")]);
      expect(store.loadLogs("t", 5)).toEqual(mark(8, 12, "c"));
      expect(store.stats().logEvents).toBe(12);
    });

    test("ids with gaps, thousands of records at once, trims inside a batch: newest first, exact", () => {
      const big = logs(1, 10_000);
      const after: LogRecord[] = [{ id: 20_000, event: { type: "lagged", skipped: 1 } }, ...logs(20_001, 20_003)];
      store.appendLogs("t", [...big, ...after]);
      expect(store.loadLogs("t", 100_000)).toEqual([...big, ...after]);
      expect(store.loadLogs("t", 6)).toEqual([...big.slice(-2), ...after]);
      store.trimLogs("t", 5_000);
      expect(store.loadLogs("t", 100_000)).toEqual([...big.slice(4_999), ...after]);
      expect(store.stats().logEvents).toBe(10_000 - 4_999 + 4);
      store.trimLogs("t", 20_002);
      expect(store.loadLogs("t", 100)).toEqual(after.slice(2));
      expect(store.stats().logEvents).toBe(2);
    });

    test("trimLogs below a fractional id keeps the whole ids above it", () => {
      store.appendLogs("t", logs(1, 6));
      store.trimLogs("t", 3.5);
      expect(store.loadLogs("t", 100)).toEqual(logs(4, 6));
      expect(store.stats().logEvents).toBe(3);
    });

    test("logs of a deleted task are ignored", () => {
      store.putTask(makeTask({ id: "gone" }));
      store.deleteTask("gone");
      store.appendLogs("gone", logs(1, 2));
      expect(store.loadLogs("gone", 10)).toEqual([]);
    });

    test("logs are per task, and logs of an unknown task are ignored", () => {
      store.putTask(makeTask({ id: "u" }));
      store.appendLogs("t", logs(1, 2));
      store.appendLogs("u", logs(1, 3));
      store.appendLogs("nope", logs(1, 3));
      store.trimLogs("u", 3);
      expect(store.loadLogs("t", 10)).toEqual(logs(1, 2));
      expect(store.loadLogs("u", 10)).toEqual(logs(3, 3));
      expect(store.loadLogs("nope", 10)).toEqual([]);
    });
  });

  describe("sweepCandidates", () => {
    beforeEach(() => {
      const finished: [string, "succeeded" | "failed" | "timeout" | "canceled" | "exhausted", number][] = [
        ["s2", "failed", 300],
        ["s4", "canceled", 200],
        ["s1", "succeeded", 100],
        ["s5", "exhausted", 500],
        ["s3", "timeout", 200],
      ];
      for (const [id, phase, updatedAt] of finished) store.putTask(makeTask({ id, phase, createdAt: 1, updatedAt }));
      store.putTask(makeTask({ id: "p1", phase: "pending", createdAt: 1, updatedAt: 50 }));
      store.putTask(makeTask({ id: "r1", phase: "running", createdAt: 1, updatedAt: 60 }));
    });

    test.each([
      ["nothing expired, under the cap", 0, 10, []],
      ["finished before olderThan (exclusive)", 200, 100, ["s1"]],
      ["finished before olderThan, ties by id", 250, 100, ["s1", "s3", "s4"]],
      ["beyond keep, oldest first", 0, 2, ["s1", "s3", "s4"]],
      ["beyond keep by one", 0, 4, ["s1"]],
      ["union: ttl reaches further than keep", 350, 4, ["s1", "s3", "s4", "s2"]],
      ["union: keep reaches further than ttl", 150, 1, ["s1", "s3", "s4", "s2"]],
      ["everything terminal, never active tasks", 10_000, 0, ["s1", "s3", "s4", "s2", "s5"]],
    ] as [string, number, number, string[]][])("%s", (_case, olderThan, keep, ids) => {
      expect(store.sweepCandidates(olderThan, keep)).toEqual({ ids, candidates: ids.length, terminal: 5 });
    });

    test("a limit returns the oldest candidates and counts them all", () => {
      expect(store.sweepCandidates(350, 4, 2)).toEqual({ ids: ["s1", "s3"], candidates: 4, terminal: 5 });
      expect(store.sweepCandidates(0, 10, 2)).toEqual({ ids: [], candidates: 0, terminal: 5 });
    });
  });

  describe("meta, stats, lifecycle", () => {
    test("getMeta/setMeta", () => {
      expect(store.getMeta("agentId")).toBeUndefined();
      store.setMeta("agentId", "agt_1");
      store.setMeta("other", "x");
      store.setMeta("agentId", "agt_2");
      expect([store.getMeta("agentId"), store.getMeta("other")]).toEqual(["agt_2", "x"]);
    });

    test("stats counts tasks, runs and log events", () => {
      expect(store.stats()).toEqual({ tasks: 0, runs: 0, logEvents: 0 });
      store.putTask(makeTask({ id: "a" }));
      store.putTask(makeTask({ id: "b" }));
      store.putRun("a", run(1));
      store.putRun("b", run(1));
      store.putRun("b", run(2));
      store.appendLogs("b", logs(1, 4));
      expect(store.stats()).toEqual({ tasks: 2, runs: 3, logEvents: 4 });
    });

    test("flush resolves, also with nothing pending; close is idempotent and ends use", async () => {
      await store.flush();
      store.putTask(makeTask({ id: "a" }));
      await store.flush();
      await store.flush();
      expect(store.failure).toBeUndefined(); // a working store has not failed (a closed one neither)
      await store.close();
      await store.close();
      expect(() => store.getTask("a")).toThrow("closed");
      expect(() => store.putTask(makeTask({ id: "b" }))).toThrow("closed");
      await expect(store.flush()).rejects.toThrow("closed");
    });
  });
});
