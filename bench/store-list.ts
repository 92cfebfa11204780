/**
 * listTasks and friends over 100 000 tasks in the SQLite store.
 *
 *   bun bench/store-list.ts [tasks=100000] [iterations=300]
 *
 * Builds a realistic population (50 slots, mostly terminal phases, 10 owners,
 * env/team labels, a rare canary label), then times each query shape and
 * prints p50/p95/max in ms.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSqliteStore } from "../src/store/sqlite-store.ts";
import type { Store } from "../src/store/store.ts";
import type { Phase, Task, TaskQuery } from "../src/tasks/model.ts";
import { mulberry32, pickPhase } from "./lib/seed-store.ts";

const N = Number(process.argv[2] ?? 100_000);
const ITERATIONS = Number(process.argv[3] ?? 300);
const T0 = 1_700_000_000_000;

const PHASE_WEIGHTS: [Phase, number][] = [
  ["succeeded", 0.6],
  ["failed", 0.15],
  ["canceled", 0.1],
  ["timeout", 0.05],
  ["exhausted", 0.03],
  ["pending", 0.04],
  ["running", 0.03],
];


function task(i: number, rnd: () => number): Task {
  const createdAt = T0 + i * 1000 + Math.floor(rnd() * 500);
  const phase = pickPhase(PHASE_WEIGHTS, rnd());
  const labels: Record<string, string> = { env: ["prod", "dev", "staging"][i % 3] ?? "prod", team: `team-${i % 20}` };
  if (rnd() < 0.005) labels.canary = "yes";
  return {
    metadata: { id: `tsk_${String(i).padStart(26, "0")}`, resourceVersion: 4, createdAt, updatedAt: createdAt + 60_000, owner: `user-${i % 10}` },
    spec: {
      slot: `slot-${Math.floor(rnd() * 50)}`,
      kind: {
        subprocess: {
          mode: { command: { command: "/usr/local/bin/job", args: ["--task", String(i), "--verbose"] } },
          env: [{ key: "LANG", value: "C.UTF-8" }],
          failOnNonZero: true,
        },
      },
      timeout: 60_000,
      restart: { type: "onFailure" },
      backoff: { jitter: "equal", firstMs: 1000, maxMs: 60_000, factor: 2 },
      admission: "queue",
      labels,
      maxAttempts: 5,
    },
    status: { phase, attempt: 1, ...(phase === "pending" || phase === "running" ? {} : { exitCode: phase === "succeeded" ? 0 : 1 }) },
  };
}

function time(label: string, fn: () => unknown): void {
  fn(); // warm the statement and the page cache
  const samples: number[] = [];
  let size = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const t = performance.now();
    const out = fn();
    samples.push(performance.now() - t);
    if (i === 0) size = sizeOf(out);
  }
  samples.sort((a, b) => a - b);
  const at = (p: number) => (samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? 0).toFixed(3);
  console.log(`${label.padEnd(58)} p50 ${at(0.5).padStart(8)}  p95 ${at(0.95).padStart(8)}  max ${at(1).padStart(8)}  rows ${size}`);
}

function sizeOf(out: unknown): number {
  if (Array.isArray(out)) return out.length;
  if (out && typeof out === "object" && "tasks" in out && Array.isArray(out.tasks)) return out.tasks.length;
  return out === undefined ? 0 : 1;
}

function list(store: Store, q: Partial<TaskQuery>) {
  return () => store.listTasks({ order: "asc", limit: 100, offset: 0, ...q });
}

const dir = mkdtempSync(join(tmpdir(), "tasklane-bench-"));
try {
  const path = join(dir, "tasklane.db");
  let store = createSqliteStore({ path });
  const rnd = mulberry32(42);
  const load = performance.now();
  for (let i = 0; i < N; i++) store.putTask(task(i, rnd));
  await store.flush();
  const loadMs = performance.now() - load;
  await store.close();
  console.log(
    `loaded ${N} tasks in ${loadMs.toFixed(0)} ms (${((N / loadMs) * 1000).toFixed(0)} puts/s, ${store.commits} commits); db ${(statSync(path).size / 1e6).toFixed(1)} MB`,
  );

  store = createSqliteStore({ path }); // reopen: measure from a cold connection like an agent restart
  const mid = T0 + (N / 2) * 1000;
  time("status=succeeded slot=slot-7 limit 100 (target <= 5 ms)", list(store, { status: "succeeded", slot: "slot-7" }));
  time("status=succeeded slot=slot-7 limit 100 desc", list(store, { status: "succeeded", slot: "slot-7", order: "desc" }));
  time("status=failed slot=slot-7 limit 100", list(store, { status: "failed", slot: "slot-7" }));
  time("status=running limit 100", list(store, { status: "running" }));
  time("status=succeeded limit 100", list(store, { status: "succeeded" }));
  time("slot=slot-7 limit 100", list(store, { slot: "slot-7" }));
  time("owner=user-3 limit 100", list(store, { owner: "user-3" }));
  time("no filter limit 100", list(store, {}));
  time("no filter desc limit 100", list(store, { order: "desc" }));
  time("no filter limit 100 offset 50000", list(store, { offset: 50_000 }));
  time("created window (1 h) limit 100", list(store, { createdAfter: mid, createdBefore: mid + 3_600_000 }));
  time("labels env=prod limit 100", list(store, { labels: { env: "prod" } }));
  time("labels env=prod team=team-3 limit 100", list(store, { labels: { env: "prod", team: "team-3" } }));
  time("labels canary=yes (rare) limit 100", list(store, { labels: { canary: "yes" } }));
  time("status=succeeded slot=slot-7 env=prod limit 100", list(store, { status: "succeeded", slot: "slot-7", labels: { env: "prod" } }));
  time("getTask", () => store.getTask(`tsk_${String(31_337).padStart(26, "0")}`));
  time(`activeTasks (${Math.round(0.07 * N)} expected)`, () => store.activeTasks());
  time("sweepCandidates(ttl mid, keep 10000)", () => store.sweepCandidates(mid, 10_000));
  time("stats", () => store.stats());
  await store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
