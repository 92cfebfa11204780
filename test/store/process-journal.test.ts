/**
 * The process journal beside the SQLite store (src/store/process-journal.ts):
 * what it keeps, what survives to the next open, and when a commit empties it.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createMemoryStore } from "../../src/store/memory-store.ts";
import { EMPTY_AT_BYTES, openProcessJournal, parseProcessJournal } from "../../src/store/process-journal.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import { makeTask } from "./make-task.ts";
import { tempDir } from "./temp-dir.ts";

describe("parseProcessJournal", () => {
  test("whole lines only: a line cut short by a crash, garbage and impossible ids are skipped", () => {
    const text = ["41 41 12345", "42 42 -", "", "nonsense", "0 1 5", "43 43", "44 44 12x", "45 45 678"].join("\n") + "\n46 4";
    expect(parseProcessJournal(text)).toEqual([
      { pid: 41, pgid: 41, startTime: "12345" },
      { pid: 42, pgid: 42 },
      { pid: 45, pgid: 45, startTime: "678" },
    ]);
  });
});

describe("openProcessJournal", () => {
  test("appends survive to the next open (no close: as after a kill -9); a commit keeps a small file, and empties it once it holds EMPTY_AT_BYTES", () => {
    using dir = tempDir();
    const path = join(dir.path, "j");
    const first = openProcessJournal(path);
    expect(first.leftovers).toEqual([]);
    first.append({ pid: 10, pgid: 10, startTime: "500" });
    first.append({ pid: 11, pgid: 11 });
    expect(readFileSync(path, "utf8")).toBe("10 10 500\n11 11 -\n");
    const next = openProcessJournal(path);
    expect(next.leftovers).toEqual([
      { pid: 10, pgid: 10, startTime: "500" },
      { pid: 11, pgid: 11 },
    ]);
    // Committed lines stay until the file is a page long: recovery checks them like stored runs.
    next.committed();
    expect(readFileSync(path, "utf8")).toBe("10 10 500\n11 11 -\n");
    let lines = 2;
    while (readFileSync(path, "utf8").length < EMPTY_AT_BYTES) {
      next.append({ pid: 1000 + lines, pgid: 1000 + lines, startTime: "700" });
      lines++;
    }
    expect(lines).toBeGreaterThan(100);
    next.committed();
    expect(readFileSync(path, "utf8")).toBe("");
    next.append({ pid: 12, pgid: 12, startTime: "600" });
    expect(readFileSync(path, "utf8")).toBe("12 12 600\n"); // at the start again, not after a hole
    // Closed with a line not committed (a commit failed): kept for the next agent.
    next.close();
    expect(readFileSync(path, "utf8")).toBe("12 12 600\n");
    first.close();
  });

  test("a previous agent's journal of a page or more is emptied by the first commit", () => {
    using dir = tempDir();
    const path = join(dir.path, "j");
    const text = "5 5 9\n".repeat(Math.ceil(EMPTY_AT_BYTES / 6));
    writeFileSync(path, text);
    const j = openProcessJournal(path);
    expect(j.leftovers.length).toBe(Math.ceil(EMPTY_AT_BYTES / 6));
    j.committed();
    expect(readFileSync(path, "utf8")).toBe("");
    j.close();
    expect(existsSync(path)).toBe(false);
  });

  test("closed with a previous agent's lines not yet committed: kept", () => {
    using dir = tempDir();
    const path = join(dir.path, "j");
    writeFileSync(path, "5 5 9\n");
    openProcessJournal(path).close();
    expect(readFileSync(path, "utf8")).toBe("5 5 9\n");
  });

  test("closed with everything committed: the file is removed", () => {
    using dir = tempDir();
    const path = join(dir.path, "j");
    const j = openProcessJournal(path);
    j.append({ pid: 1, pgid: 1 });
    j.committed();
    j.close();
    expect(existsSync(path)).toBe(false);
  });

  test("append and committed after close are no-ops, not errors", () => {
    using dir = tempDir();
    const j = openProcessJournal(join(dir.path, "j"));
    j.close();
    j.append({ pid: 1, pgid: 1 });
    j.committed();
    j.close();
    expect(existsSync(join(dir.path, "j"))).toBe(false);
  });
});

describe("the SQLite store's journal (<db>-procs)", () => {
  test("a run started goes to the journal at once and stays there after its commit; finished runs are not journaled; a clean close removes it", async () => {
    using dir = tempDir();
    const path = join(realpathSync(dir.path), "tasklane.db");
    const store = createSqliteStore({ path, commitIntervalMs: 3_600_000 });
    store.putTask(makeTask({ id: "a" }));
    store.putRun("a", { attempt: 1, phase: "running", startedAt: 1, process: { pid: 4242, pgid: 4242, startTime: "99" } });
    expect(readFileSync(`${path}-procs`, "utf8")).toBe("4242 4242 99\n");
    await store.flush();
    expect(readFileSync(`${path}-procs`, "utf8")).toBe("4242 4242 99\n"); // committed; emptied once a page long
    store.putRun("a", { attempt: 1, phase: "succeeded", startedAt: 1, finishedAt: 2, exitCode: 0, process: { pid: 4242, pgid: 4242, startTime: "99" } });
    store.putRun("a", { attempt: 2, phase: "running", startedAt: 3 }); // a script's run stored before its spawn: no process yet
    expect(readFileSync(`${path}-procs`, "utf8")).toBe("4242 4242 99\n");
    await store.close();
    expect(existsSync(`${path}-procs`)).toBe(false); // a clean close leaves no journal
  });

  test("stays bounded while runs are committed: emptied by the commit that finds a page", async () => {
    using dir = tempDir();
    const path = join(realpathSync(dir.path), "tasklane.db");
    const store = createSqliteStore({ path, commitIntervalMs: 3_600_000 });
    let largest = 0;
    let emptied = 0;
    for (let i = 0; i < 1000; i++) {
      const id = `t${i}`;
      store.putTask(makeTask({ id }));
      store.putRun(id, { attempt: 1, phase: "running", startedAt: 1, process: { pid: 100_000 + i, pgid: 100_000 + i, startTime: "12345" } });
      const size = readFileSync(`${path}-procs`, "utf8").length;
      largest = Math.max(largest, size);
      await store.flush();
      const after = readFileSync(`${path}-procs`, "utf8").length;
      if (after === 0) emptied++;
      else expect(after).toBe(size); // a commit below the size keeps every line
    }
    expect(emptied).toBe(4); // 1 000 lines of 20 bytes: emptied at each 4 100 bytes
    expect(largest).toBeLessThan(EMPTY_AT_BYTES + 64); // one line past the size at most
    await store.close();
    expect(existsSync(`${path}-procs`)).toBe(false);
  });

  test("what a previous agent left in the journal is the store's leftoverProcesses", async () => {
    using dir = tempDir();
    const path = join(realpathSync(dir.path), "tasklane.db");
    await createSqliteStore({ path }).close();
    writeFileSync(`${path}-procs`, "7 7 70\n8 8 -\n9 9");
    const store = createSqliteStore({ path });
    expect(store.leftoverProcesses).toEqual([
      { pid: 7, pgid: 7, startTime: "70" },
      { pid: 8, pgid: 8 },
    ]);
    await store.close();
    expect(createMemoryStore().leftoverProcesses).toEqual([]);
  });
});
