import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import { readSse } from "../helpers/sse.ts";
import { bashSpec, startAgent } from "../helpers/start-agent.ts";
import { makeTask } from "../store/make-task.ts";

function countRows(dataDir: string): { tasks: number; runs: number; logs: number; maxLogsPerTask: number; maxRunsPerTask: number } {
  const db = new Database(join(dataDir, "tasklane.db"), { readonly: true });
  try {
    const one = (sql: string) => (db.query(sql).get() as { n: number | null }).n ?? 0;
    return {
      tasks: one("SELECT COUNT(*) AS n FROM tasks"),
      runs: one("SELECT COUNT(*) AS n FROM runs"),
      logs: one("SELECT SUM(last_id - first_id + 1) AS n FROM log_batches"),
      maxLogsPerTask: one("SELECT MAX(c) AS n FROM (SELECT SUM(last_id - first_id + 1) AS c FROM log_batches GROUP BY task_id)"),
      maxRunsPerTask: one("SELECT MAX(c) AS n FROM (SELECT COUNT(*) AS c FROM runs GROUP BY task_id)"),
    };
  } finally {
    db.close();
  }
}

describe("retention", () => {
  test("terminal tasks, runs and log events stay within the caps on disk and in memory", async () => {
    await using a = await startAgent({ persistent: true, args: ["--max-tasks", "5", "--max-runs", "2", "--log-retain", "10"] });
    const total = 30;
    // Watch for the sweeper's deletions instead of waiting for time.
    const events = await fetch(`${a.url}/api/v1/events`);
    const deleted = (async () => {
      let n = 0;
      for await (const ev of readSse(events)) if (ev.event === "deleted" && ++n === total - 5) return n;
      return n;
    })();

    // One task with many runs and chatty output.
    const chatty = await a.json("POST", "/api/v1/tasks", {
      spec: bashSpec("for i in $(seq 1 50); do echo line-$i; done; exit 1", {
        restart: { type: "onFailure" },
        backoff: { jitter: "none", firstMs: 1, maxMs: 1, factor: 1 },
        maxAttempts: 4,
      }),
    });
    expect(chatty.status).toBe(201);
    const final = await a.json("GET", `/api/v1/tasks/${chatty.body.task_id}/wait?timeoutMs=20000`);
    expect(final.body.task.status.phase).toBe("exhausted");
    expect(final.body.task.status.attempt).toBe(4);
    const runs = await a.json("GET", `/api/v1/tasks/${chatty.body.task_id}/runs`);
    expect(runs.body.runs.map((r: { attempt: number }) => r.attempt)).toEqual([3, 4]);
    const logs = await (await a.request("GET", `/api/v1/tasks/${chatty.body.task_id}/logs?follow=false`)).text();
    const ids = [...logs.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids.length).toBeLessThanOrEqual(11); // 10 retained + possibly one lagged marker
    expect(logs).toContain('"line":"line-50"');

    for (let i = 1; i < total; i++) {
      const r = await a.json("POST", "/api/v1/tasks?wait=true", { spec: bashSpec(`echo task-${i}`) });
      expect(r.status).toBe(200);
    }
    expect(await deleted).toBe(total - 5);
    void events.body?.cancel().catch(() => {});

    const list = await a.json("GET", "/api/v1/tasks?limit=1000");
    expect(list.body.total).toBe(5);
    // the newest survive
    expect(list.body.tasks.map((t: any) => t.spec.kind.subprocess.mode.script.body).map((b: string) => atob(b))).toEqual(
      ["echo task-25", "echo task-26", "echo task-27", "echo task-28", "echo task-29"],
    );
    await a.agent.stop();
    const rows = countRows(a.dataDir);
    expect(rows.tasks).toBe(5);
    expect(rows.maxRunsPerTask).toBeLessThanOrEqual(2);
    expect(rows.maxLogsPerTask).toBeLessThanOrEqual(10);
  });

  test("a backlog beyond the cap is swept in batches, the agent answering between them", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "tasklane-test-"));
    try {
      const stored = 3000;
      const store = createSqliteStore({ path: join(dataDir, "tasklane.db") });
      for (let i = 0; i < stored; i++) {
        const id = `tsk_${String(i).padStart(26, "0")}`;
        store.putTask(makeTask({ id, phase: "succeeded", createdAt: 1_700_000_000_000 + i, updatedAt: Date.now() - stored + i }));
      }
      await store.close();

      await using a = await startAgent({ dataDir, args: ["--max-tasks", "10"] });
      const totals: number[] = [];
      for (;;) {
        const r = await a.json("GET", "/api/v1/tasks?limit=10");
        totals.push(r.body.total);
        if (r.body.total <= 10) {
          // The newest ten are kept.
          expect(r.body.tasks.map((t: { metadata: { id: string } }) => t.metadata.id)).toEqual(
            Array.from({ length: 10 }, (_, k) => `tsk_${String(stored - 10 + k).padStart(26, "0")}`),
          );
          break;
        }
      }
      // Swept all at once, the first answer would only come after the sweep: here the agent answered in between.
      expect(totals.some((t) => t > 10 && t < stored)).toBe(true);
      expect(totals.at(-1)).toBe(10);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
  test("runs and log events stored under higher caps show only the newest after a restart with lower ones", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "tasklane-test-"));
    try {
      let id: string;
      {
        await using a = await startAgent({ dataDir, args: ["--max-runs", "10", "--log-retain", "1000"] });
        const r = await a.json("POST", "/api/v1/tasks", {
          spec: bashSpec("for i in $(seq 1 30); do echo line-$i; done; exit 1", { restart: { type: "onFailure" }, backoff: { jitter: "none", firstMs: 1, maxMs: 1, factor: 1 }, maxAttempts: 5 }),
        });
        expect(r.status).toBe(201);
        id = r.body.task_id;
        expect((await a.json("GET", `/api/v1/tasks/${id}/wait?timeoutMs=20000`)).body.task.status.phase).toBe("exhausted");
        expect((await a.json("GET", `/api/v1/tasks/${id}/runs`)).body.runs.map((x: { attempt: number }) => x.attempt)).toEqual([1, 2, 3, 4, 5]);
      }
      await using b = await startAgent({ dataDir, args: ["--max-runs", "2", "--log-retain", "10"] });
      const runs = await b.json("GET", `/api/v1/tasks/${id}/runs`);
      expect(runs.status).toBe(200);
      expect(runs.body.runs.map((x: { attempt: number }) => x.attempt)).toEqual([4, 5]);
      const logs = await (await b.request("GET", `/api/v1/tasks/${id}/logs?follow=false`)).text();
      const lines = [...logs.matchAll(/"line":"(line-\d+)"/g)].map((m) => m[1]);
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.length).toBeLessThanOrEqual(10);
      expect(lines.at(-1)).toBe("line-30");
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
  test("a short --task-ttl is enforced within a tenth of it (at least a second), not on a minute's timer", async () => {
    await using a = await startAgent({ persistent: true, args: ["--task-ttl", "1s"] });
    const r = await a.json("POST", "/api/v1/tasks?wait=true", { spec: bashSpec("true") });
    expect(r.status).toBe(200);
    const id = r.body.task.metadata.id;
    const finishedAt = performance.now();
    const events = await fetch(`${a.url}/api/v1/events`);
    const deleted = (async () => {
      for await (const ev of readSse(events)) if (ev.event === "deleted" && ev.data.id === id) return true;
      return false;
    })();
    // Bounded: swept by the 1 s TTL plus a 1 s check interval, not after the minute the check used to wait.
    const outcome = await Promise.race([deleted, Bun.sleep(15_000).then(() => "not swept within 15 s")]);
    await events.body?.cancel();
    expect(outcome).toBe(true);
    expect(performance.now() - finishedAt).toBeGreaterThanOrEqual(900);
    expect((await a.json("GET", `/api/v1/tasks/${id}`)).status).toBe(404);
  });
});
