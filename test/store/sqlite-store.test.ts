/**
 * What only the SQLite store promises: durability across close and crash,
 * group commit, honest failure, and schema migrations.
 */
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { MIGRATIONS, SCHEMA_VERSION, migrate } from "../../src/store/migrations.ts";
import { openStore } from "../../src/store/open-store.ts";
import { createMemoryStore } from "../../src/store/memory-store.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { StoredRun } from "../../src/store/store.ts";
import type { LogRecord } from "../../src/tasks/model.ts";
import { idsOf, makeTask } from "./make-task.ts";
import { killHard, startWriter } from "./start-writer.ts";
import { tempDir } from "./temp-dir.ts";

const HOUR = 3_600_000;
const FIXTURE_V1 = join(import.meta.dir, "..", "fixtures", "store-v1.sql");

function dbPath(dir: string): string {
  return join(realpathSync(dir), "tasklane.db");
}

describe("insertTask", () => {
  test("an id stored by an earlier run of the store (not among the recent ones) is replaced, labels included", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    const first = createSqliteStore({ path });
    first.putTask(makeTask({ id: "old", slot: "a", labels: { env: "prod" } }));
    await first.close();
    const store = createSqliteStore({ path });
    const again = makeTask({ id: "old", slot: "b", labels: {} });
    store.insertTask(again);
    await store.flush();
    expect(store.getTask("old")).toEqual(again);
    expect(store.listTasks({ order: "asc", limit: 10, offset: 0, labels: { env: "prod" } }).total).toBe(0);
    expect(store.stats().tasks).toBe(1);
    await store.close();
  });
});

/** Open `path` beside the store's schema and count UPDATEs of `tasks` into `updates` (a trigger). */
function countTaskUpdates(path: string): () => number {
  const db = new Database(path);
  db.run("CREATE TABLE updates (id TEXT NOT NULL)");
  db.run("CREATE TRIGGER count_updates AFTER UPDATE ON tasks BEGIN INSERT INTO updates (id) VALUES (NEW.id); END");
  db.close();
  return () => {
    const check = new Database(path, { readonly: true });
    const n = check.query<{ n: number }, []>("SELECT count(*) AS n FROM updates").get()?.n ?? -1;
    check.close();
    return n;
  };
}

describe("a new task's first row", () => {
  test("a task admitted and started in the same turn is written once, already running; every statement after sees it", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    await createSqliteStore({ path }).close();
    const updates = countTaskUpdates(path);
    const store = createSqliteStore({ path, commitIntervalMs: HOUR });
    const pending = makeTask({ id: "t1", slot: "s", phase: "pending" });
    const running = makeTask({ id: "t1", slot: "s", phase: "running", updatedAt: 1_700_000_000_001 });
    const run: StoredRun = { attempt: 1, phase: "running", startedAt: 1_700_000_000_001 };
    store.insertTask(pending);
    store.putTask(running);
    // The run's INSERT only lands when its task exists: the staged row ran first.
    store.putRun("t1", run);
    const list = (status: "pending" | "running") => store.listTasks({ status, order: "asc", limit: 10, offset: 0 }).total;
    expect({ pending: list("pending"), running: list("running"), runs: store.listRuns("t1") }).toEqual({ pending: 0, running: 1, runs: [run] });
    await store.flush();
    const done = makeTask({ id: "t1", slot: "s", phase: "succeeded", updatedAt: 1_700_000_000_002 });
    store.putTask(done);
    await store.close();
    // One UPDATE: succeeded. The pending state never reached SQLite.
    expect(updates()).toBe(1);
    const reopened = createSqliteStore({ path });
    expect({ task: reopened.getTask("t1"), runs: reopened.listRuns("t1") }).toEqual({ task: done, runs: [run] });
    await reopened.close();
  });

  test("a staged task deleted before the commit is not stored; one changing slot or labels is written in full", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    const store = createSqliteStore({ path, commitIntervalMs: HOUR });
    store.insertTask(makeTask({ id: "gone" }));
    store.deleteTask("gone");
    store.insertTask(makeTask({ id: "moved", slot: "a" }));
    const moved = makeTask({ id: "moved", slot: "b", labels: { env: "prod" } });
    store.putTask(moved);
    await store.close();
    const reopened = createSqliteStore({ path });
    expect({
      gone: reopened.getTask("gone"),
      moved: reopened.getTask("moved"),
      bySlotA: reopened.listTasks({ slot: "a", order: "asc", limit: 10, offset: 0 }).total,
      byLabel: idsOf(reopened.listTasks({ labels: { env: "prod" }, order: "asc", limit: 10, offset: 0 }).tasks),
    }).toEqual({ gone: undefined, moved, bySlotA: 0, byLabel: ["moved"] });
    await reopened.close();
  });

  test("a staged insert that fails loses its batch: the flush that would answer its submit rejects, and every later one", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    await createSqliteStore({ path }).close();
    const db = new Database(path);
    db.run("CREATE TRIGGER refuse BEFORE INSERT ON tasks WHEN NEW.id = 'bad' BEGIN SELECT RAISE(ABORT, 'no room for bad'); END");
    db.close();
    const store = createSqliteStore({ path, commitIntervalMs: HOUR });
    store.insertTask(makeTask({ id: "kept" }));
    await store.flush();
    store.insertTask(makeTask({ id: "good" }));
    store.insertTask(makeTask({ id: "bad" }));
    const message = `store ${path}: storing a new task failed, writes were lost: no room for bad`;
    await expect(store.flush()).rejects.toThrow(message);
    expect({ bad: store.getTask("bad"), good: store.getTask("good"), active: idsOf(store.activeTasks()) }).toEqual({
      bad: undefined,
      good: undefined,
      active: ["kept"],
    });
    await expect(store.flush()).rejects.toThrow(message);
    await expect(store.close()).rejects.toThrow(message);
  });
});

describe("durability", () => {
  test("tasks, runs, logs and meta survive close and reopen", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    const a = makeTask({ id: "a", slot: "s", phase: "succeeded", owner: "alice", labels: { env: "prod" }, createdAt: 1 });
    const b = makeTask({ id: "b", slot: "s", phase: "running", createdAt: 2 });
    const runB: StoredRun = { attempt: 1, phase: "running", startedAt: 10, process: { pid: 77, pgid: 77, startTime: "555" } };
    const logB: LogRecord[] = [
      { id: 1, event: { type: "runStarted", attempt: 1, startedAt: 10 } },
      { id: 2, event: { type: "chunk", attempt: 1, stream: "stderr", seq: 0, ts: 11, line: "ünïcødé ✓" } },
    ];
    const first = createSqliteStore({ path });
    first.putTask(a);
    first.putTask(b);
    first.putTask(makeTask({ id: "c" }));
    first.deleteTask("c");
    first.putRun("b", runB);
    first.appendLogs("b", logB);
    first.setMeta("agentId", "agt_1");
    await first.close();

    const again = createSqliteStore({ path });
    try {
      expect({
        tasks: again.listTasks({ order: "asc", limit: 10, offset: 0 }),
        labelled: idsOf(again.listTasks({ labels: { env: "prod" }, order: "asc", limit: 10, offset: 0 }).tasks),
        active: again.activeTasks(),
        runs: again.listRuns("b"),
        logs: again.loadLogs("b", 10),
        meta: again.getMeta("agentId"),
        stats: again.stats(),
      }).toEqual({
        tasks: { tasks: [a, b], total: 2 },
        labelled: ["a"],
        active: [b],
        runs: [runB],
        logs: logB,
        meta: "agt_1",
        stats: { tasks: 2, runs: 1, logEvents: 2 },
      });
    } finally {
      await again.close();
    }
  });

  test("writes acknowledged by flush() survive kill -9 of the writer; unflushed ones are not half-applied", async () => {
    using dir = tempDir();
    const writer = await startWriter(dir.path, 300, 7);
    await killHard(writer);
    expect(writer.signalCode).toBe("SIGKILL");

    const store = openStore(dir.path);
    try {
      const listed = store.listTasks({ order: "asc", limit: 1000, offset: 0 });
      const expectedIds = Array.from({ length: 300 }, (_, i) => `flushed-${String(i).padStart(5, "0")}`);
      expect({ ids: idsOf(listed.tasks), total: listed.total, stats: store.stats() }).toEqual({
        ids: expectedIds,
        total: 300,
        stats: { tasks: 300, runs: 300, logEvents: 300 },
      });
      expect(store.getTask("flushed-00123")).toEqual(makeTask({ id: "flushed-00123", createdAt: 1123 }));
      expect(store.listRuns("flushed-00123")).toEqual([
        { attempt: 1, phase: "running", startedAt: 2123, process: { pid: 223, pgid: 223 } },
      ]);
    } finally {
      await store.close();
    }
  });
});

describe("log rows", () => {
  /** A store in `dir` holding task "t". */
  function storeWithTask(dir: string) {
    const path = dbPath(dir);
    const store = createSqliteStore({ path });
    store.putTask(makeTask({ id: "t" }));
    return { path, store };
  }

  /** Rows of `log_batches` and the events each holds, in id order. */
  function logRows(path: string): number[] {
    const db = new Database(path, { readonly: true });
    try {
      return db.query<{ n: number }, []>("SELECT last_id - first_id + 1 AS n FROM log_batches ORDER BY last_id").all().map((r) => r.n);
    } finally {
      db.close();
    }
  }

  /** Characters of stored row text in `log_batches`, all rows together. */
  function storedLogBytes(path: string): number {
    const db = new Database(path, { readonly: true });
    try {
      return db.query<{ n: number }, []>("SELECT sum(length(body)) AS n FROM log_batches").get()?.n ?? 0;
    } finally {
      db.close();
    }
  }

  const chunk = (id: number, line: string): LogRecord => ({ id, event: { type: "chunk", attempt: 1, stream: "stdout", seq: id, ts: 1, line } });

  test("consecutive events share a row: up to 4096 of them, or about 1 MiB of lines; a gap in the ids starts a new row", async () => {
    using dir = tempDir();
    const { path, store } = storeWithTask(dir.path);
    const short = Array.from({ length: 5000 }, (_, i) => chunk(i + 1, `line ${i + 1}`));
    const long = Array.from({ length: 8 }, (_, i) => chunk(6001 + i, "y".repeat(300 * 1024)));
    store.appendLogs("t", [...short, ...long]);
    expect(store.loadLogs("t", 10_000)).toEqual([...short, ...long]);
    await store.close();
    // 5000 short lines: 4096 + 904; then the gap; 8 lines of 300 KiB: rows stop once past 1 MiB (4 lines each).
    expect(logRows(path)).toEqual([4096, 904, 4, 4]);
  });

  test("a chatty task's lines are stored packed: about the line's own bytes each, not its event's JSON", async () => {
    using dir = tempDir();
    const { path, store } = storeWithTask(dir.path);
    const line = "x".repeat(99);
    const all = Array.from({ length: 4000 }, (_, i): LogRecord => ({ id: i + 1, event: { type: "chunk", attempt: 1, stream: "stdout", seq: i, ts: 1_712_750_400_000 + (i >> 8), line } }));
    store.appendLogs("t", all);
    await store.close();
    expect(storedLogBytes(path)).toBeLessThan(4000 * 103);
    const again = createSqliteStore({ path });
    expect(again.loadLogs("t", 10_000)).toEqual(all);
    await again.close();
  });

  test("ids overwritten inside a stored row leave rows holding only what they still show (no copies of the old body)", async () => {
    using dir = tempDir();
    const { path, store } = storeWithTask(dir.path);
    const all = Array.from({ length: 4000 }, (_, i) => chunk(i + 1, `line ${i + 1} ${"z".repeat(90)}`));
    store.appendLogs("t", all);
    for (let k = 0; k < 100; k++) {
      const id = 20 + 37 * k;
      all[id - 1] = chunk(id, `new ${id}`);
      store.appendLogs("t", [all[id - 1] as LogRecord]);
    }
    expect(store.loadLogs("t", 10_000)).toEqual(all);
    await store.close();
    // One copy of the log is ≈ 4000 × 100 B = 0.4 MB in packed rows (it was 66 MB with each split copying the whole row).
    expect(storedLogBytes(path)).toBeLessThan(1_000_000);
  });
});

describe("log rows against the in-memory store", () => {
  /** A small deterministic generator (LCG), so a failure names its seed and replays. */
  function lcg(seed: number): (lo: number, hi: number) => number {
    let x = seed >>> 0;
    return (lo, hi) => {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      return lo + Math.floor((x / 2 ** 32) * (hi - lo + 1));
    };
  }

  for (const seed of [1, 2, 3]) {
    test(`random appends (ascending, gapped, overlapping, duplicate, descending, big), trims and reopens read back alike (seed ${seed})`, async () => {
      using dir = tempDir();
      const path = dbPath(dir.path);
      let sqlite = createSqliteStore({ path });
      const memory = createMemoryStore();
      for (const s of [sqlite, memory]) s.putTask(makeTask({ id: "t" }));
      const r = lcg(seed);
      let tag = 0;
      const rec = (id: number): LogRecord => ({ id, event: { type: "chunk", attempt: 1, stream: "stdout", seq: id, ts: tag, line: `${id}.${tag}` } });
      const steps: string[] = [];
      for (let op = 0; op < 250; op++) {
        tag++;
        const k = r(0, 99);
        if (k < 60) {
          const kind = r(0, 79) === 0 ? 5 : r(0, 4);
          const start = r(1, 300);
          const n = kind === 5 ? r(4_090, 4_200) : r(0, 40);
          const ids: number[] = [];
          if (kind === 0 || kind === 5) for (let i = 0; i < n; i++) ids.push(start + i);
          else if (kind === 1) for (let i = 0, id = start; i < n; i++, id += r(1, 3)) ids.push(id);
          else if (kind === 2) for (let i = 0; i < n; i++) ids.push(r(1, 300));
          else if (kind === 3) for (let i = 0; i < n; i++) ids.push(start + n - i);
          else for (let i = 0; i < n; i++) ids.push(start + i, ...(r(0, 4) === 0 ? [start + i] : []));
          steps.push(`append ${ids.length} from ${ids[0]} (kind ${kind})`);
          for (const s of [sqlite, memory]) s.appendLogs("t", ids.map(rec));
        } else if (k < 80) {
          const before = r(0, 320);
          steps.push(`trim ${before}`);
          for (const s of [sqlite, memory]) s.trimLogs("t", before);
        } else if (k < 83) {
          steps.push("reopen");
          await sqlite.close();
          sqlite = createSqliteStore({ path });
        }
        // The whole log every tenth step (the memory store clones each record it returns).
        for (const limit of op % 10 === 9 ? [1, r(2, 40), 100_000] : [1, r(2, 40)]) {
          const got = { step: steps.length, logs: sqlite.loadLogs("t", limit), events: sqlite.stats().logEvents };
          const want = { step: steps.length, logs: memory.loadLogs("t", limit), events: memory.stats().logEvents };
          if (!Bun.deepEquals(got, want)) expect({ ...got, steps: steps.slice(-5) }).toEqual({ ...want, steps: steps.slice(-5) });
        }
      }
      await sqlite.close();
    });
  }
});

describe("group commit", () => {
  test("reads see writes before they are committed", async () => {
    using dir = tempDir();
    const store = createSqliteStore({ path: dbPath(dir.path), commitIntervalMs: HOUR });
    const task = makeTask({ id: "a", slot: "s", labels: { k: "v" } });
    store.putTask(task);
    expect({
      commits: store.commits,
      got: store.getTask("a"),
      listed: store.listTasks({ slot: "s", labels: { k: "v" }, order: "asc", limit: 10, offset: 0 }),
      stats: store.stats(),
    }).toEqual({ commits: 0, got: task, listed: { tasks: [task], total: 1 }, stats: { tasks: 1, runs: 0, logEvents: 0 } });
    // flush() must not wait for the (hour-long) commit interval.
    await store.flush();
    expect(store.commits).toBe(1);
    await store.close();
  });

  test("a burst of 1000 concurrent put+flush costs one commit", async () => {
    using dir = tempDir();
    const store = createSqliteStore({ path: dbPath(dir.path) });
    await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        store.putTask(makeTask({ id: `t${i}`, createdAt: i }));
        await store.flush();
      }),
    );
    expect({ commits: store.commits, stats: store.stats() }).toEqual({
      commits: 1,
      stats: { tasks: 1000, runs: 0, logEvents: 0 },
    });
    await store.close();
  });

  test("submits flushed one after another each get their own commit", async () => {
    using dir = tempDir();
    const store = createSqliteStore({ path: dbPath(dir.path), commitIntervalMs: HOUR });
    for (let i = 0; i < 5; i++) {
      store.putTask(makeTask({ id: `t${i}` }));
      await store.flush();
    }
    expect(store.commits).toBe(5);
    await store.close();
  });

  test("maxBatch writes commit at once, without waiting for flush or the interval", async () => {
    using dir = tempDir();
    const store = createSqliteStore({ path: dbPath(dir.path), commitIntervalMs: HOUR, maxBatch: 10 });
    for (let i = 0; i < 25; i++) store.putTask(makeTask({ id: `t${i}` }));
    expect(store.commits).toBe(2);
    await store.flush();
    expect(store.commits).toBe(3);
    await store.close();
  });

  test("writes nobody flushes are committed after commitIntervalMs", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    const store = createSqliteStore({ path, commitIntervalMs: 5 });
    store.putTask(makeTask({ id: "a" }));
    expect(store.commits).toBe(0);
    while (store.commits === 0) await Bun.sleep(1); // waits for the state, bounded by the test timeout
    expect(store.commits).toBe(1);
    await store.close();
  });

  test("a failed commit rejects the pending flushes and every later one; nothing pretends durability", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    let failNext = false;
    const told: string[] = [];
    const store = createSqliteStore({
      path,
      commitIntervalMs: HOUR,
      beforeCommit() {
        if (failNext) {
          failNext = false;
          throw new Error("disk I/O error");
        }
      },
      onFailure: (err) => told.push(`${err.message} (failure set: ${store.failure === err})`),
    });
    store.putTask(makeTask({ id: "kept" }));
    await store.flush();
    expect(store.failure).toBeUndefined();

    failNext = true;
    store.putTask(makeTask({ id: "lost" }));
    const message = `store ${path}: commit failed, writes were lost: disk I/O error`;
    const results = await Promise.allSettled([store.flush(), store.flush()]);
    // Sticky and told once, when it happened (readiness reads `failure`; the agent is told to stop serving).
    expect(store.failure?.message).toBe(message);
    expect(told).toEqual([`${message} (failure set: true)`]);
    expect(results.map((r) => (r.status === "rejected" ? String(r.reason) : "fulfilled"))).toEqual([
      `Error: ${message}`,
      `Error: ${message}`,
    ]);
    // The rollback is visible: the lost write is gone from reads too.
    expect(idsOf(store.activeTasks())).toEqual(["kept"]);
    expect(store.getTask("lost")).toBeUndefined();
    expect(store.getTaskJson("lost")).toBeUndefined();
    expect(store.getTask("kept")?.metadata.id).toBe("kept");
    await expect(store.flush()).rejects.toThrow(message);

    store.putTask(makeTask({ id: "later" }));
    await expect(store.flush()).rejects.toThrow(message);
    expect(told).toHaveLength(1); // told once, not per rejected flush
    await expect(store.close()).rejects.toThrow(message);

    const reopened = createSqliteStore({ path });
    expect(idsOf(reopened.activeTasks())).toEqual(["kept", "later"]);
    await reopened.flush();
    await reopened.close();
  });
});

describe("WAL fsync off the event loop", () => {
  /** A syncWal seam that holds each fsync until the test completes it. */
  function heldSyncs() {
    const pending: { fd: number; done: (err: Error | null) => void }[] = [];
    return {
      pending,
      syncWal: (fd: number, done: (err: Error | null) => void) => void pending.push({ fd, done }),
      /** Complete the oldest held fsync (really syncing the file first). */
      complete(err: Error | null = null) {
        const s = pending.shift();
        if (!s) throw new Error("no fsync in flight");
        s.done(err);
      },
    };
  }
  /** Has `p` settled by the time the event loop has turned a few times? */
  async function settled(p: Promise<unknown>): Promise<boolean> {
    let done = false;
    p.then(
      () => (done = true),
      () => (done = true),
    );
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    return done;
  }

  test("by default every flush waits for a real fsync of the WAL that started after its commit", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    const store = createSqliteStore({ path });
    store.putTask(makeTask({ id: "a" }));
    await store.flush();
    expect({ commits: store.commits, syncs: store.syncs }).toEqual({ commits: 1, syncs: 1 });
    await store.close();
    const reopened = createSqliteStore({ path });
    expect(reopened.getTask("a")?.metadata.id).toBe("a");
    await reopened.close();
  });

  test("a flush is answered only after an fsync that covers its commit, one fsync in flight at a time", async () => {
    using dir = tempDir();
    const held = heldSyncs();
    const store = createSqliteStore({ path: dbPath(dir.path), commitIntervalMs: HOUR, syncWal: held.syncWal });
    store.putTask(makeTask({ id: "a" }));
    const first = store.flush();
    expect(await settled(first)).toBe(false); // committed, fsync held
    expect({ commits: store.commits, inFlight: held.pending.length }).toEqual({ commits: 1, inFlight: 1 });

    // Written while the first fsync is in flight: that fsync cannot cover it, so its commit
    // waits for that fsync to complete, and later writes join the same commit.
    store.putTask(makeTask({ id: "b" }));
    const second = store.flush();
    store.putTask(makeTask({ id: "c" }));
    const again = store.flush();
    expect(await settled(second)).toBe(false);
    expect({ commits: store.commits, inFlight: held.pending.length }).toEqual({ commits: 1, inFlight: 1 });
    expect(store.getTask("c")?.metadata.id).toBe("c"); // readable before its commit

    held.complete();
    expect(await settled(first)).toBe(true);
    expect(await settled(again)).toBe(false); // "b" and "c" committed now, not durable yet
    expect(await settled(second)).toBe(false);
    expect({ commits: store.commits, inFlight: held.pending.length }).toEqual({ commits: 2, inFlight: 1 }); // one commit, the next fsync started

    held.complete();
    await Promise.all([second, again]);
    expect(store.syncs).toBe(2);

    // With the WAL durable and nothing pending, flush answers at once.
    expect(await settled(store.flush())).toBe(true);
    await store.close();
  });

  test("commits nobody awaits are synced too, in the background", async () => {
    using dir = tempDir();
    const held = heldSyncs();
    const store = createSqliteStore({ path: dbPath(dir.path), commitIntervalMs: 1, syncWal: held.syncWal });
    store.putTask(makeTask({ id: "a" }));
    while (held.pending.length === 0) await Bun.sleep(1); // waits for the interval commit's fsync, bounded by the test timeout
    expect(store.commits).toBe(1);
    held.complete();
    expect(store.syncs).toBe(1);
    await store.close();
  });

  test("a failed fsync rejects the flushes waiting for it and every later one", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    const held = heldSyncs();
    const told: Error[] = [];
    const store = createSqliteStore({ path, commitIntervalMs: HOUR, syncWal: held.syncWal, onFailure: (err) => told.push(err) });
    store.putTask(makeTask({ id: "a" }));
    const first = store.flush();
    expect(await settled(first)).toBe(false);
    expect(store.failure).toBeUndefined();
    held.complete(new Error("EIO: i/o error"));
    const message = `store ${path}: fsync of the write-ahead log failed, committed writes may not be durable: EIO: i/o error`;
    expect(store.failure?.message).toBe(message);
    expect(told.map((e) => e.message)).toEqual([message]);
    await expect(first).rejects.toThrow(message);
    store.putTask(makeTask({ id: "b" }));
    await expect(store.flush()).rejects.toThrow(message);
    expect(told).toHaveLength(1);
    // The writes are committed (reads see them); only their durability is in doubt.
    expect(store.getTask("a")?.metadata.id).toBe("a");
    await expect(store.close()).rejects.toThrow(message);
  });

  test("close waits for the fsync in flight", async () => {
    using dir = tempDir();
    const held = heldSyncs();
    const store = createSqliteStore({ path: dbPath(dir.path), commitIntervalMs: HOUR, syncWal: held.syncWal });
    store.putTask(makeTask({ id: "a" }));
    void store.flush();
    const closing = store.close();
    expect(await settled(closing)).toBe(false);
    held.complete();
    await closing;
  });

  test("synchronous NORMAL: flush answers after the commit, without an fsync", async () => {
    using dir = tempDir();
    const held = heldSyncs();
    const store = createSqliteStore({ path: dbPath(dir.path), commitIntervalMs: HOUR, synchronous: "NORMAL", syncWal: held.syncWal });
    store.putTask(makeTask({ id: "a" }));
    await store.flush();
    expect({ commits: store.commits, syncs: store.syncs, inFlight: held.pending.length }).toEqual({ commits: 1, syncs: 0, inFlight: 0 });
    await store.close();
  });
});

describe("schema", () => {
  function indexes(path: string): { version: number; names: string[] } {
    const db = new Database(path, { readonly: true });
    try {
      const version = db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version ?? -1;
      const names = db
        .query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
        .all()
        .map((r) => r.name);
      return { version, names };
    } finally {
      db.close();
    }
  }

  const CURRENT_INDEXES = [
    "log_batches_task_last",
    "task_labels_key_value_created",
    "tasks_created",
    "tasks_owner_created",
    "tasks_phase_created",
    "tasks_phase_slot_created",
    "tasks_slot_created",
    "tasks_terminal_updated",
  ];

  test("a new database is created at the current version", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    await createSqliteStore({ path }).close();
    expect(indexes(path)).toEqual({ version: SCHEMA_VERSION, names: CURRENT_INDEXES });
    expect(SCHEMA_VERSION).toBe(4);
  });

  test("a version-1 database (recorded fixture) is upgraded in place and its data is intact", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    const v1 = new Database(path, { create: true });
    v1.run("PRAGMA journal_mode = WAL");
    v1.run(readFileSync(FIXTURE_V1, "utf8"));
    v1.close();
    expect(indexes(path).version).toBe(1);

    const store = createSqliteStore({ path });
    const a = makeTask({
      id: "tsk_01HV1AAAAAAAAAAAAAAAAAAAAA",
      slot: "backup",
      phase: "succeeded",
      owner: "alice",
      createdAt: 1_700_000_000_000,
      updatedAt: 1_700_000_005_000,
      labels: { env: "prod" },
    });
    const b = makeTask({ id: "tsk_01HV1BBBBBBBBBBBBBBBBBBBBB", slot: "sync", phase: "running", createdAt: 1_700_000_001_000 });
    expect({
      byLabel: store.listTasks({ labels: { env: "prod" }, order: "asc", limit: 10, offset: 0 }),
      // Label rows got their task's created_at in migration 2: a window around it matches, one after it does not.
      byLabelAt: idsOf(store.listTasks({ labels: { env: "prod" }, createdAfter: 1_699_999_999_999, createdBefore: 1_700_000_000_001, order: "asc", limit: 10, offset: 0 }).tasks),
      byLabelAfter: store.listTasks({ labels: { env: "prod" }, createdAfter: 1_700_000_000_000, order: "asc", limit: 10, offset: 0 }).total,
      byStatus: store.listTasks({ status: "running", order: "asc", limit: 10, offset: 0 }),
      active: store.activeTasks(),
      runs: store.listRuns(b.metadata.id),
      logs: store.loadLogs(a.metadata.id, 2),
      sweep: store.sweepCandidates(1_700_000_005_001, 100),
      meta: store.getMeta("agentId"),
      stats: store.stats(),
    }).toEqual({
      byLabel: { tasks: [a], total: 1 },
      byLabelAt: [a.metadata.id],
      byLabelAfter: 0,
      byStatus: { tasks: [b], total: 1 },
      active: [b],
      runs: [{ attempt: 1, phase: "running", startedAt: 1_700_000_001_100, process: { pid: 4321, pgid: 4321, startTime: "123456" } }],
      logs: [
        { id: 2, event: { type: "chunk", attempt: 1, stream: "stdout", seq: 0, ts: 1_700_000_000_200, line: "backup done" } },
        { id: 3, event: { type: "runFinished", attempt: 1, exitCode: 0, finishedAt: 1_700_000_005_000 } },
      ],
      sweep: { ids: [a.metadata.id], candidates: 1, terminal: 1 },
      meta: "agt_v1",
      stats: { tasks: 2, runs: 2, logEvents: 3 },
    });
    await store.close();
    expect(indexes(path)).toEqual({ version: SCHEMA_VERSION, names: CURRENT_INDEXES });
  });

  test("log rows of a version-3 database (an event per item) read, split and trim beside the packed rows written after the upgrade", async () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    const rec = (id: number, tag = "old"): LogRecord => ({
      id,
      event: { type: "chunk", attempt: 1, stream: id % 7 === 0 ? "stderr" : "stdout", seq: id, ts: 1_700_000_000_000 + (id >> 4), line: `${tag} ${id}` },
    });
    const first = createSqliteStore({ path });
    first.putTask(makeTask({ id: "t" }));
    first.appendLogs("t", Array.from({ length: 100 }, (_, i) => rec(i + 1)));
    await first.close();
    // Rewrite the rows as version 3 wrote them (a JSON array of events) and put the version back.
    const v3 = new Database(path);
    const rows = v3.query<{ rid: number; origin: number; last: number }, []>("SELECT rowid AS rid, origin, last_id AS last FROM log_batches").all();
    expect(rows).toHaveLength(1);
    for (const r of rows) {
      const events = Array.from({ length: r.last - r.origin + 1 }, (_, i) => rec(r.origin + i).event);
      v3.run("UPDATE log_batches SET body = ? WHERE rowid = ?", [JSON.stringify(events), r.rid]);
    }
    v3.run("PRAGMA user_version = 3");
    v3.close();

    const store = createSqliteStore({ path });
    const want = Array.from({ length: 100 }, (_, i) => rec(i + 1));
    expect(store.loadLogs("t", 1000)).toEqual(want);
    const more = Array.from({ length: 50 }, (_, i) => rec(101 + i, "new"));
    store.appendLogs("t", more);
    const overwrite = Array.from({ length: 6 }, (_, i) => rec(40 + i, "again"));
    store.appendLogs("t", overwrite); // splits the old row: its two remaining parts are written packed
    store.trimLogs("t", 20);
    const expected = [...want.slice(19, 39), ...overwrite, ...want.slice(45), ...more];
    expect(store.loadLogs("t", 1000)).toEqual(expected);
    expect(store.loadLogs("t", 3)).toEqual(expected.slice(-3));
    expect(store.stats().logEvents).toBe(expected.length);
    await store.close();
    const after = new Database(path, { readonly: true });
    try {
      const bodies = after.query<{ body: string }, []>("SELECT body FROM log_batches ORDER BY origin").all();
      // Every row is now packed: each item an array (a run of lines), none an event object.
      expect(bodies.map((b) => (JSON.parse(b.body) as unknown[]).every((item) => Array.isArray(item)))).toEqual([true, true, true, true]);
      expect(after.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version).toBe(SCHEMA_VERSION);
    } finally {
      after.close();
    }
    const again = createSqliteStore({ path });
    expect(again.loadLogs("t", 1000)).toEqual(expected);
    await again.close();
  });

  test("migrations apply in one transaction: a failing step leaves the database as it was", () => {
    const db = new Database(":memory:");
    const broken = [MIGRATIONS[0] ?? { description: "", sql: "" }, { description: "broken step", sql: "CREATE TABLE x (a); SELECT nope FROM nowhere;" }];
    expect(() => migrate(db, "mem.db", broken)).toThrow(
      "cannot open store: mem.db: migration 2 (broken step) failed: no such table: nowhere",
    );
    expect({
      version: db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version,
      tables: db.query<{ name: string }, []>("SELECT name FROM sqlite_master").all(),
      inTransaction: db.inTransaction,
    }).toEqual({ version: 0, tables: [], inTransaction: false });
    expect(migrate(db, "mem.db")).toEqual({ from: 0, to: SCHEMA_VERSION });
    expect(migrate(db, "mem.db")).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
    db.close();
  });

  test("a database from a newer tasklane is refused and left byte-for-byte untouched", () => {
    using dir = tempDir();
    const path = dbPath(dir.path);
    const future = new Database(path, { create: true });
    future.run("CREATE TABLE future_things (x); PRAGMA user_version = 99;");
    future.close();
    const before = readFileSync(path);
    const files = readdirSync(dir.path).sort();

    expect(() => createSqliteStore({ path })).toThrow(
      `cannot open store: ${path} has schema version 99, newer than version ${SCHEMA_VERSION} supported by this tasklane; upgrade tasklane`,
    );
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(dir.path).sort()).toEqual(files);
  });
});
