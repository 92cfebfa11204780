/**
 * 9 — memory under churn: /bin/true tasks pass through the compiled agent
 * (default retention: --max-tasks 10000, --max-runs 100, log retention 1000)
 * from 8 closed-loop clients (submit and wait), until 100 000 tasks have
 * passed through (≈ 2 min here), or SOAK_MS as a safety cap on a slow machine.
 * RSS is sampled every 250 ms (it moves by up to ± 8 MiB between samples that
 * far apart, so the fit needs many); the figure is the RSS at the end, "flat" means
 * the least-squares line through the last half's samples rises by at most 5 %
 * (or 5 MiB) across that half — a fit, so that one sample (a GC about to run)
 * does not decide —, and the RSS at 100 000 tasks is extrapolated from that
 * slope only when the cap stopped the run earlier. A 60 s run (≈ 55 000 tasks)
 * used to stand in for the 100 000: its last half is too short for the fit,
 * which read 7.8, 4.0 and −0.1 MiB of growth in three runs of one binary whose
 * 100 000-task run stays within 88–95 MiB (bench/README.md).
 */
import { startAgent } from "./lib/agent-process.ts";
import { runStandalone, since, type BenchContext } from "./lib/bench-context.ts";
import { readRss } from "./lib/proc-rss.ts";
import type { BenchResult } from "./lib/report.ts";
import { slope } from "./lib/stats.ts";
import { commandSpec, countTasks, submit } from "./lib/task-spec.ts";

const TARGET_TASKS = 100_000;
const SOAK_MS = Number(process.env.BENCH_SOAK_MS ?? 240_000);
const CONCURRENCY = 8;
const SAMPLE_MS = 250;

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  await using agent = await startAgent({ bin: ctx.bin });
  const samples: { t: number; tasks: number; rss: number }[] = [];
  let done = 0;
  let next = 0;
  const t0 = performance.now();
  const end = t0 + SOAK_MS;
  const sampler = setInterval(() => samples.push({ t: since(t0), tasks: done, rss: readRss(agent.pid).total }), SAMPLE_MS);
  samples.push({ t: 0, tasks: 0, rss: readRss(agent.pid).total });
  try {
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < TARGET_TASKS && performance.now() < end) {
          const i = next++;
          await submit(agent.url, commandSpec(`soak-${i % 1000}`, ["/bin/true"]), true);
          done++;
        }
      }),
    );
  } finally {
    clearInterval(sampler);
  }
  samples.push({ t: since(t0), tasks: done, rss: readRss(agent.pid).total });
  const stored = await countTasks(agent.url, "succeeded");
  const elapsed = since(t0);
  const last = samples.at(-1) ?? { t: 0, tasks: 0, rss: 0 };
  const mid = samples.find((s) => s.tasks >= done / 2) ?? last;
  const lastHalf = samples.filter((s) => s.tasks >= done / 2);
  const perTask = slope(lastHalf.map((s) => ({ x: s.tasks, y: s.rss })));
  const growth = perTask * (done - mid.tasks);
  const flat = growth <= Math.max(5, 0.05 * mid.rss);
  const max = Math.max(...samples.map((s) => s.rss));
  const at100k = last.rss + Math.max(0, perTask) * Math.max(0, TARGET_TASKS - done);
  const curve = samples.filter((_, i) => i % Math.max(1, Math.floor(samples.length / 8)) === 0 || i === samples.length - 1);
  ctx.log(`9 soak: ${done} tasks in ${(elapsed / 1000).toFixed(0)} s (${((done / elapsed) * 1000).toFixed(0)}/s), RSS ${curve.map((s) => `${s.tasks}:${s.rss.toFixed(0)}`).join(" ")} MiB`);
  return [
    {
      name: `9 RSS after ${done} tasks`,
      ours: last.rss,
      unit: "MiB",
      target: "<= 200 MiB, flat",
      pass: max <= 200 && at100k <= 200 && flat,
      note: `max ${max.toFixed(0)}; last half ${mid.rss.toFixed(0)} -> ${last.rss.toFixed(0)} MiB, fitted growth ${growth.toFixed(1)} MiB (${(perTask * 10_000).toFixed(2)} MiB/10k tasks); at 100k: ${done >= TARGET_TASKS ? "measured" : `extrapolated ${at100k.toFixed(0)} MiB`}; ${stored} kept by retention`,
    },
  ];
}

if (import.meta.main) await runStandalone(run);
