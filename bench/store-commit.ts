/**
 * Group commit of the SQLite store: which moment should a pending flush()
 * commit? Compares the three `flushCommit` policies (synchronous=FULL):
 *
 *   next-tick  commit on the next turn of the event loop (the default)
 *   now        commit synchronously inside flush()
 *   interval   wait for the commit timer (commitIntervalMs = 2)
 *
 * Scenarios: a burst of 1000 submits (put + await flush) issued in one tick;
 * the same burst arriving over HTTP from a separate client process; and
 * lone submits one after another (latency of a single submit). Last, raw
 * write throughput: status updates (putTask, labels unchanged) and log
 * batches (appendLogs of 100 records), each followed by one flush.
 *
 * Each case runs once to warm up, then `rounds` times with the policy order
 * rotated; the line shows medians over the rounds.
 *
 *   bun bench/store-commit.ts [burst=1000] [rounds=5]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSqliteStore, type SqliteStoreOptions } from "../src/store/sqlite-store.ts";
import type { Task } from "../src/tasks/model.ts";

const BURST = Number(process.argv[2] ?? 1000);
const ROUNDS = Number(process.argv[3] ?? 5);
const POLICIES = ["next-tick", "now", "interval"] as const;
type Policy = (typeof POLICIES)[number];

let seq = 0;
function task(): Task {
  const id = `tsk_${String(seq++).padStart(26, "0")}`;
  const now = Date.now();
  return {
    metadata: { id, resourceVersion: 1, createdAt: now, updatedAt: now },
    spec: {
      slot: `slot-${seq % 8}`,
      kind: { subprocess: { mode: { command: { command: "true", args: [] } }, env: [], failOnNonZero: true } },
      timeout: 60_000,
      restart: { type: "never" },
      backoff: { jitter: "none", firstMs: 1000, maxMs: 1000, factor: 1 },
      admission: "queue",
      labels: { bench: "commit" },
    },
    status: { phase: "pending", attempt: 0 },
  };
}

function pct(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

function median(xs: number[]): number {
  return pct(xs, 0.5);
}

async function withStore<T>(policy: Policy, fn: (store: ReturnType<typeof createSqliteStore>) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-commit-"));
  const opts: SqliteStoreOptions = { path: join(dir, "tasklane.db"), flushCommit: policy };
  const store = createSqliteStore(opts);
  try {
    return await fn(store);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Result {
  ms: number;
  commits: number;
  p50: number;
  p99: number;
}

async function burstInProcess(policy: Policy): Promise<Result> {
  return withStore(policy, async (store) => {
    const latencies: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: BURST }, async () => {
        const start = performance.now();
        store.putTask(task());
        await store.flush();
        latencies.push(performance.now() - start);
      }),
    );
    return { ms: performance.now() - t0, commits: store.commits, p50: pct(latencies, 0.5), p99: pct(latencies, 0.99) };
  });
}

const CLIENT = `
const [url, n] = [process.argv[1], Number(process.argv[2])];
const lat = [];
const t0 = performance.now();
await Promise.all(Array.from({ length: n }, async () => {
  const s = performance.now();
  const r = await fetch(url, { method: "POST" });
  if (r.status !== 201) throw new Error("status " + r.status);
  await r.arrayBuffer();
  lat.push(performance.now() - s);
}));
const ms = performance.now() - t0;
lat.sort((a, b) => a - b);
console.log(JSON.stringify({ ms, p50: lat[Math.floor(n * 0.5)], p99: lat[Math.floor(n * 0.99)] }));
`;

async function burstOverHttp(policy: Policy): Promise<Result> {
  return withStore(policy, async (store) => {
    using server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      async fetch() {
        store.putTask(task());
        await store.flush();
        return new Response("{}", { status: 201 });
      },
    });
    const client = Bun.spawn([process.execPath, "-e", CLIENT, `http://127.0.0.1:${server.port}/`, String(BURST)], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const out = await new Response(client.stdout).text();
    if ((await client.exited) !== 0) throw new Error("client failed");
    const r = JSON.parse(out) as { ms: number; p50: number; p99: number };
    return { ...r, commits: store.commits };
  });
}

async function loneSubmits(policy: Policy): Promise<Result> {
  return withStore(policy, async (store) => {
    const latencies: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) {
      const start = performance.now();
      store.putTask(task());
      await store.flush();
      latencies.push(performance.now() - start);
    }
    return { ms: performance.now() - t0, commits: store.commits, p50: pct(latencies, 0.5), p99: pct(latencies, 0.99) };
  });
}

console.log(`burst of ${BURST}, synchronous=FULL, commitIntervalMs=2, maxBatch=1000, ${ROUNDS} rounds (medians)`);
for (const [name, scenario, count] of [
  ["in-process burst", burstInProcess, BURST],
  ["HTTP burst", burstOverHttp, BURST],
  ["200 lone submits", loneSubmits, 200],
] as const) {
  for (const policy of POLICIES) await scenario(policy); // warm-up
  const results = new Map<Policy, Result[]>(POLICIES.map((p) => [p, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < POLICIES.length; i++) {
      const policy = POLICIES[(i + round) % POLICIES.length] ?? "next-tick";
      results.get(policy)?.push(await scenario(policy));
    }
  }
  for (const [policy, rs] of results) {
    const ms = median(rs.map((r) => r.ms));
    console.log(
      `${name.padEnd(17)} ${policy.padEnd(9)} total ${ms.toFixed(1).padStart(7)} ms  ${((count / ms) * 1000).toFixed(0).padStart(6)} submits/s` +
        `  commits ${String(median(rs.map((r) => r.commits))).padStart(4)}` +
        `  latency p50 ${median(rs.map((r) => r.p50)).toFixed(2)} p99 ${median(rs.map((r) => r.p99)).toFixed(2)} ms`,
    );
  }
}

await withStore("next-tick", async (store) => {
  const tasks = Array.from({ length: 10_000 }, () => task());
  for (const t of tasks) store.putTask(t);
  await store.flush();
  let t0 = performance.now();
  for (const t of tasks) store.putTask({ ...t, status: { phase: "running", attempt: 1 } });
  await store.flush();
  let ms = performance.now() - t0;
  console.log(`status updates    10000 putTask + flush: ${ms.toFixed(0)} ms (${((10_000 / ms) * 1000).toFixed(0)}/s)`);
  const id = tasks[0]?.metadata.id ?? "";
  t0 = performance.now();
  for (let b = 0; b < 1000; b++) {
    store.appendLogs(
      id,
      Array.from({ length: 100 }, (_, i) => ({
        id: b * 100 + i + 1,
        event: { type: "chunk" as const, attempt: 1, stream: "stdout" as const, seq: b * 100 + i, ts: Date.now(), line: `line ${b}:${i} ${"x".repeat(60)}` },
      })),
    );
  }
  await store.flush();
  ms = performance.now() - t0;
  console.log(`log batches       1000 x appendLogs(100) + flush: ${ms.toFixed(0)} ms (${((100_000 / ms) * 1000).toFixed(0)} records/s, ${store.commits} commits so far)`);
});
