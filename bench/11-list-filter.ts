/**
 * 11 — listing with filters over 100 000 stored tasks: GET
 * /api/v1/tasks?status=succeeded&slot=slot-7&limit=100, sequential, against
 * the compiled agent (--max-tasks 200000 so retention keeps them all).
 * Client-side latency, p50 and p99 (no baseline; target p50 <= 5 ms).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent } from "./lib/agent-process.ts";
import { runStandalone, since, type BenchContext } from "./lib/bench-context.ts";
import type { BenchResult } from "./lib/report.ts";
import { seedStore } from "./lib/seed-store.ts";
import { median, percentile } from "./lib/stats.ts";

const TASKS = 100_000;
const QUERIES = 300;

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-bench-list-"));
  try {
    const t0 = performance.now();
    await seedStore(join(dir, "tasklane.db"), TASKS);
    ctx.log(`11 list: seeded ${TASKS} tasks in ${(since(t0) / 1000).toFixed(1)} s`);
    await using agent = await startAgent({ bin: ctx.bin, dataDir: dir, args: ["--max-tasks", "200000"] });
    const url = `${agent.url}/api/v1/tasks?status=succeeded&slot=slot-7&limit=100`;
    const first = (await (await fetch(url)).json()) as { tasks: unknown[]; total: number };
    if (first.tasks.length !== 100) throw new Error(`list returned ${first.tasks.length} tasks`);
    const p50s: number[] = [];
    const p99s: number[] = [];
    for (let r = 0; r < ctx.rounds; r++) {
      const xs: number[] = [];
      for (let i = 0; i < QUERIES; i++) {
        const q0 = performance.now();
        const res = await fetch(url);
        await res.arrayBuffer();
        xs.push(since(q0));
      }
      p50s.push(percentile(xs, 0.5));
      p99s.push(percentile(xs, 0.99));
      ctx.log(`11 list round ${r + 1}: p50 ${p50s.at(-1)?.toFixed(2)} ms, p99 ${p99s.at(-1)?.toFixed(2)} ms`);
    }
    const o = median(p50s);
    return [
      {
        name: "11 list status+slot limit=100, 100k stored",
        ours: o,
        unit: "ms p50",
        target: "p50 <= 5 ms",
        pass: o <= 5,
        note: `p99 ${median(p99s).toFixed(2)} ms; ${first.total} matches, ${QUERIES} queries x ${ctx.rounds} rounds over REST`,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await runStandalone(run);
