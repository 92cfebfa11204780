/**
 * 1 — throughput: N no-op tasks (/bin/true) submitted over REST by 8
 * concurrent clients, timed until every one has succeeded (wait for the last
 * ones submitted, then count).
 * Baseline, same run: Bun.spawn + drain both pipes + wait, 8 at a time.
 * Peer (informational): supervisord over XML-RPC, start-and-wait, 8 programs.
 */
import { startAgent } from "./lib/agent-process.ts";
import { runStandalone, since, type BenchContext } from "./lib/bench-context.ts";
import { spawnAndWait } from "./lib/drain.ts";
import type { BenchResult } from "./lib/report.ts";
import { median } from "./lib/stats.ts";
import { supervisordRate } from "./lib/supervisord-peer.ts";
import { commandSpec, countTasks, submit, taskIdOf, waitTask } from "./lib/task-spec.ts";

const TASKS = 3000;
const CONCURRENCY = 8;
const WARMUP = 100;
const TRUE = "/bin/true";

/** Run `n` jobs with `concurrency` workers. */
async function pool(n: number, concurrency: number, job: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await job(next++);
    }),
  );
}

/** Tasks/s through a fresh agent: submit all, then poll until all succeeded. */
async function ours(bin: string, round: number): Promise<number> {
  await using agent = await startAgent({ bin });
  await pool(WARMUP, CONCURRENCY, (i) => submit(agent.url, commandSpec(`w${round}-${i}`, [TRUE]), true));
  const ids: string[] = [];
  const t0 = performance.now();
  await pool(TASKS, CONCURRENCY, async (i) => {
    ids[i] = taskIdOf(await submit(agent.url, commandSpec(`t${round}-${i}`, [TRUE])));
  });
  // The agent starts queued tasks in submission order: wait for the last ones, then count once
  // (and poll for stragglers). A count every 2 ms while the agent works took ≈ 10 % of its main
  // thread (a SQL count over thousands of rows per poll): the observer slowed what it observed.
  await Promise.all(ids.slice(-CONCURRENCY).map((id) => waitTask(agent.url, id)));
  const deadline = t0 + 120_000;
  while ((await countTasks(agent.url, "succeeded")) < TASKS + WARMUP) {
    if (performance.now() > deadline) throw new Error("throughput: tasks did not all succeed within 120 s");
    await Bun.sleep(1);
  }
  const ms = since(t0);
  const failed = (await countTasks(agent.url, "failed")) + (await countTasks(agent.url, "canceled"));
  if (failed > 0) throw new Error(`throughput: ${failed} tasks did not succeed`);
  return (TASKS / ms) * 1000;
}

/** Spawns/s of a plain Bun script doing the same work without an agent (`detached`: each child in its own session). */
async function baseline(detached = false): Promise<number> {
  await pool(WARMUP, CONCURRENCY, () => spawnAndWait([TRUE], detached));
  const t0 = performance.now();
  await pool(TASKS, CONCURRENCY, () => spawnAndWait([TRUE], detached));
  return (TASKS / since(t0)) * 1000;
}

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const oursRates: number[] = [];
  const baseRates: number[] = [];
  const detachedRates: number[] = [];
  for (let r = 0; r < ctx.rounds; r++) {
    baseRates.push(await baseline());
    oursRates.push(await ours(ctx.bin, r));
    detachedRates.push(await baseline(true));
    ctx.log(
      `1 throughput round ${r + 1}: ours ${oursRates.at(-1)?.toFixed(0)}/s, raw ${baseRates.at(-1)?.toFixed(0)}/s, raw detached ${detachedRates.at(-1)?.toFixed(0)}/s`,
    );
  }
  const o = median(oursRates);
  const b = median(baseRates);
  const d = median(detachedRates);
  const results: BenchResult[] = [
    {
      name: "1 throughput /bin/true c=8",
      ours: o,
      baseline: b,
      unit: "tasks/s",
      ratio: o / b,
      target: ">= 0.6x",
      pass: o / b >= 0.6,
      note: `${TASKS} tasks x ${ctx.rounds} rounds, REST submit, wait for the last ${CONCURRENCY} submitted, then count until all succeeded`,
    },
  ];
  results.push({
    name: "1 same, baseline children detached",
    ours: o,
    baseline: d,
    unit: "tasks/s",
    ratio: o / d,
    target: "info",
    note: "the baseline spawning each child in its own session (setsid), as the agent starts every task; the target compares with plain spawns",
  });
  const peer = await supervisordRate({ programs: CONCURRENCY, durationMs: 3000 });
  results.push(
    peer
      ? { name: "1 peer: supervisord", ours: o, baseline: peer.rate, unit: "tasks/s", ratio: o / peer.rate, target: "peer", note: `XML-RPC startProcess(wait) + poll exit, 8 programs, ${peer.runs} runs in 3 s` }
      : { name: "1 peer: supervisord", ours: o, unit: "tasks/s", target: "peer", note: "skipped: supervisord not installed (apt-get install supervisor)" },
  );
  return results;
}

if (import.meta.main) await runStandalone(run);
