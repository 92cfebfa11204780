/**
 * GET /api/v1/tasks (CONTRACT §2): filters, paging, total, order, labels and
 * creation-time bounds, over the in-memory and the SQLite store. The agent's
 * clock is pinned so every task has a known, distinct createdAt.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Task } from "../../src/tasks/model.ts";
import { commandSpec, startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { submitOk, waitTerminal } from "../helpers/task-control.ts";

interface Seed {
  name: string;
  slot: string;
  labels: Record<string, string>;
  run: "true" | "false" | "hold";
}
/** Created in this order, at createdAt = 1000, 2000, … */
const SEEDS: Seed[] = [
  { name: "t1", slot: "a", labels: { team: "edge", env: "prod" }, run: "true" },
  { name: "t2", slot: "a", labels: { team: "edge", env: "dev" }, run: "false" },
  { name: "t3", slot: "b", labels: { team: "core", env: "prod" }, run: "hold" },
  { name: "t4", slot: "b", labels: { team: "edge", env: "prod" }, run: "true" },
  { name: "t5", slot: "c", labels: {}, run: "hold" },
  { name: "t6", slot: "a", labels: { team: "edge" }, run: "false" },
];

for (const persistent of [false, true]) {
  describe(`list (${persistent ? "sqlite" : "memory"} store)`, () => {
    let a: TestAgent;
    let now = 0;
    const ids = new Map<string, string>();
    const names = new Map<string, string>();

    beforeAll(async () => {
      a = await startAgent({ persistent, clock: () => now });
      for (const [i, s] of SEEDS.entries()) {
        now = (i + 1) * 1000;
        const extra = { slot: s.slot, labels: s.labels, ...(s.run === "hold" ? { hold: true } : {}) };
        const { id } = await submitOk(a, commandSpec(s.run === "false" ? "false" : "true", [], extra));
        if (s.run !== "hold") await waitTerminal(a, id);
        ids.set(s.name, id);
        names.set(id, s.name);
      }
    });
    afterAll(async () => {
      await a?.[Symbol.asyncDispose]();
    });

    /** GET the list; answers the seed names of the page and the total. */
    async function list(query: string): Promise<{ names: string[]; total: number }> {
      const r = await a.json("GET", `/api/v1/tasks${query ? `?${query}` : ""}`);
      expect(r.status).toBe(200);
      return { names: r.body.tasks.map((t: Task) => names.get(t.metadata.id) ?? t.metadata.id), total: r.body.total };
    }

    test("no filter: every task, oldest first", async () => {
      expect(await list("")).toEqual({ names: ["t1", "t2", "t3", "t4", "t5", "t6"], total: 6 });
    });

    test("whole objects in the page", async () => {
      const r = await a.json("GET", "/api/v1/tasks?slot=c");
      expect(r).toEqual({
        status: 200,
        body: {
          tasks: [
            {
              metadata: { id: ids.get("t5"), resourceVersion: 1, createdAt: 5000, updatedAt: 5000 },
              spec: {
                slot: "c",
                kind: { subprocess: { mode: { command: { command: "true", args: [] } }, env: [], failOnNonZero: true } },
                timeout: 3_600_000,
                restart: { type: "never" },
                backoff: { jitter: "full", firstMs: 1000, maxMs: 30_000, factor: 2 },
                admission: "queue",
                labels: {},
                hold: true,
              },
              status: { phase: "pending", attempt: 0 },
            },
          ],
          total: 1,
        },
      });
    });

    const cases: [string, string[], number?][] = [
      ["slot=a", ["t1", "t2", "t6"]],
      ["slot=b", ["t3", "t4"]],
      ["slot=nope", []],
      ["status=succeeded", ["t1", "t4"]],
      ["status=failed", ["t2", "t6"]],
      ["status=pending", ["t3", "t5"]],
      ["status=running", []],
      ["slot=a&status=failed", ["t2", "t6"]],
      // paging: total counts every match, not the page
      ["limit=2", ["t1", "t2"], 6],
      ["limit=2&offset=2", ["t3", "t4"], 6],
      ["limit=2&offset=5", ["t6"], 6],
      ["offset=6", [], 6],
      ["offset=100", [], 6],
      ["slot=a&limit=1&offset=1", ["t2"], 3],
      ["status=failed&limit=1", ["t2"], 2],
      // order by creation
      ["order=asc", ["t1", "t2", "t3", "t4", "t5", "t6"]],
      ["order=desc", ["t6", "t5", "t4", "t3", "t2", "t1"]],
      ["order=desc&limit=2", ["t6", "t5"], 6],
      ["order=desc&limit=2&offset=1", ["t5", "t4"], 6],
      ["slot=a&order=desc", ["t6", "t2", "t1"]],
      // labels: repeated parameters are ANDed
      ["label=team=edge", ["t1", "t2", "t4", "t6"]],
      ["label=env=prod", ["t1", "t3", "t4"]],
      ["label=team=edge&label=env=prod", ["t1", "t4"]],
      ["label=team=edge&label=env=dev", ["t2"]],
      ["label=team=core&label=env=dev", []],
      ["label=team=nobody", []],
      // a key that names an Object property filters like any other (no task has it)
      ["label=__proto__=nomatch", []],
      ["label=constructor=x", []],
      ["label=env=prod&slot=b", ["t3", "t4"]],
      ["label=team=edge&order=desc&limit=1", ["t6"], 4],
      // creation bounds (ms, exclusive)
      ["createdAfter=2500", ["t3", "t4", "t5", "t6"]],
      ["createdAfter=2000", ["t3", "t4", "t5", "t6"]],
      ["createdBefore=3500", ["t1", "t2", "t3"]],
      ["createdBefore=3000", ["t1", "t2"]],
      ["createdAfter=1500&createdBefore=4500", ["t2", "t3", "t4"]],
      ["createdAfter=1000&createdBefore=5000", ["t2", "t3", "t4"]],
      ["createdAfter=6000", []],
      ["createdAfter=0&createdBefore=1000", []],
      ["createdAfter=1500&label=env=prod&order=desc", ["t4", "t3"]],
    ];
    for (const [query, expected, total] of cases) {
      test(query, async () => {
        expect(await list(query)).toEqual({ names: expected, total: total ?? expected.length });
      });
    }

    test("64 label filters list what matches all of them; more is 400 InvalidRequest, not a failed query", async () => {
      const query = (n: number) => Array.from({ length: n }, (_, i) => `label=k${i}=v`).join("&");
      expect(await list(query(64))).toEqual({ names: [], total: 0 });
      // 990 filters made the SQL store's query deeper than SQLite allows (a 500 before the cap).
      for (const n of [65, 990]) {
        expect(await a.json("GET", `/api/v1/tasks?${query(n)}`)).toEqual({
          status: 400,
          body: { error: "InvalidRequest", message: `label filters: at most 64 (a task holds at most 64 labels), got ${n}` },
        });
      }
    });

    test("default limit is 100, max 1000", async () => {
      for (let i = 0; i < 100; i++) {
        now = 10_000 + i;
        await submitOk(a, commandSpec("true", [], { slot: "many", hold: true }));
      }
      const page = await a.json("GET", "/api/v1/tasks");
      expect(page.body.tasks.length).toBe(100);
      expect(page.body.total).toBe(106);
      const all = await a.json("GET", "/api/v1/tasks?limit=1000");
      expect(all.body.tasks.length).toBe(106);
      expect(all.body.total).toBe(106);
    });
  });
}
