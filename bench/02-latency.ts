/**
 * 2 — latency: one /bin/true task at a time, submit → succeeded, measured by
 * the client around `POST /api/v1/tasks?wait=true` (submit, durable commit,
 * spawn, exit, answer with the final task).
 * Baseline, same run: raw Bun.spawn + drain + exit, one at a time.
 */
import { startAgent } from "./lib/agent-process.ts";
import { runStandalone, since, type BenchContext } from "./lib/bench-context.ts";
import { spawnAndWait } from "./lib/drain.ts";
import type { BenchResult } from "./lib/report.ts";
import { median, percentile } from "./lib/stats.ts";
import { commandSpec, submit } from "./lib/task-spec.ts";

const SAMPLES = 400;
const WARMUP = 50;
const TRUE = "/bin/true";

async function oursRound(bin: string, round: number): Promise<number[]> {
  await using agent = await startAgent({ bin });
  for (let i = 0; i < WARMUP; i++) await submit(agent.url, commandSpec(`w${round}-${i}`, [TRUE]), true);
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = performance.now();
    const body = await submit(agent.url, commandSpec(`l${round}-${i}`, [TRUE]), true);
    out.push(since(t0));
    const phase = (body.task as { status: { phase: string } }).status.phase;
    if (phase !== "succeeded") throw new Error(`latency: task ended ${phase}`);
  }
  return out;
}

async function baselineRound(): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await spawnAndWait([TRUE]);
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = performance.now();
    await spawnAndWait([TRUE]);
    out.push(since(t0));
  }
  return out;
}

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const p50: { ours: number[]; raw: number[] } = { ours: [], raw: [] };
  const p99: { ours: number[]; raw: number[] } = { ours: [], raw: [] };
  for (let r = 0; r < ctx.rounds; r++) {
    const raw = await baselineRound();
    const ours = await oursRound(ctx.bin, r);
    p50.raw.push(percentile(raw, 0.5));
    p99.raw.push(percentile(raw, 0.99));
    p50.ours.push(percentile(ours, 0.5));
    p99.ours.push(percentile(ours, 0.99));
    ctx.log(`2 latency round ${r + 1}: ours p50 ${p50.ours.at(-1)?.toFixed(2)} p99 ${p99.ours.at(-1)?.toFixed(2)} ms, raw p50 ${p50.raw.at(-1)?.toFixed(2)} p99 ${p99.raw.at(-1)?.toFixed(2)} ms`);
  }
  const o50 = median(p50.ours);
  const r50 = median(p50.raw);
  const o99 = median(p99.ours);
  const r99 = median(p99.raw);
  const note = `${SAMPLES} sequential tasks x ${ctx.rounds} rounds; ours - raw = ${(o50 - r50).toFixed(2)} ms (p50), ${(o99 - r99).toFixed(2)} ms (p99)`;
  return [
    { name: "2 latency p50 submit->succeeded", ours: o50, baseline: r50, unit: "ms", ratio: o50 / r50, target: "<= raw + 2 ms", pass: o50 <= r50 + 2, note },
    { name: "2 latency p99 submit->succeeded", ours: o99, baseline: r99, unit: "ms", ratio: o99 / r99, target: "<= raw + 10 ms", pass: o99 <= r99 + 10 },
  ];
}

if (import.meta.main) await runStandalone(run);
