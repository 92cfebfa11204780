/**
 * Runs every benchmark (or those named: `bun bench/run.ts 1 5 11`) against
 * the compiled binary and prints one table: benchmark, ours, baseline, ratio,
 * target, pass/fail. Each benchmark alternates its own figure with its
 * baseline over BENCH_ROUNDS rounds (default 3) and reports medians.
 *
 *   bun run bench                      # all, ≈ 6 min on 2 cores
 *   BENCH_ROUNDS=5 bun bench/run.ts 1  # one benchmark, more rounds
 *   TASKLANE_BIN=dist/tasklane bun run bench   # skip the build
 *   BENCH_PROFILE_DIR=/tmp/prof bun bench/run.ts 3   # agent from source under --cpu-prof
 */
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";
import { createContext, type Benchmark } from "./lib/bench-context.ts";
import { tasklaneBinary } from "./lib/binaries.ts";
import { formatTable, met, type BenchResult } from "./lib/report.ts";
import { run as b01 } from "./01-throughput.ts";
import { run as b02 } from "./02-latency.ts";
import { run as b03 } from "./03-log-stream.ts";
import { run as b04 } from "./04-line-splitter.ts";
import { run as b05 } from "./05-http-get.ts";
import { run as b06 } from "./06-grpc-unary.ts";
import { run as b07 } from "./07-sse-fanout.ts";
import { run as b08 } from "./08-idle-rss.ts";
import { run as b09 } from "./09-rss-soak.ts";
import { run as b10 } from "./10-startup.ts";
import { run as b11 } from "./11-list-filter.ts";

const ALL: [number, string, Benchmark][] = [
  [1, "throughput", b01],
  [2, "latency", b02],
  [3, "log stream", b03],
  [4, "line splitter", b04],
  [5, "http get", b05],
  [6, "grpc unary", b06],
  [7, "sse fan-out", b07],
  [8, "idle rss", b08],
  [9, "rss soak", b09],
  [10, "start-up", b10],
  [11, "list filter", b11],
];

const wanted = process.argv.slice(2).map(Number).filter((n) => Number.isInteger(n));
const selected = wanted.length > 0 ? ALL.filter(([n]) => wanted.includes(n)) : ALL;

const t0 = performance.now();
const bin = await tasklaneBinary();
const ctx = createContext(bin);
const load0 = loadavg();
console.log(
  `machine: ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Bun ${Bun.version}; binary ${bin}; ${ctx.rounds} rounds`,
);
const results: BenchResult[] = [];
for (const [n, name, bench] of selected) {
  ctx.log(`-- ${n} ${name}`);
  try {
    results.push(...(await bench(ctx)));
  } catch (err) {
    ctx.log(`${n} ${name} failed: ${(err as Error).stack ?? String(err)}`);
    results.push({ name: `${n} ${name}`, ours: Number.NaN, unit: "-", target: "-", pass: false, note: `error: ${(err as Error).message.split("\n")[0]}` });
  }
}
const load1 = loadavg();
console.log("");
console.log(formatTable(results));
const judged = results.filter((r) => r.pass !== undefined);
const noisy = judged.filter((r) => r.noisy !== undefined);
console.log(
  `\n${judged.filter(met).length} of ${judged.length} targets met; ${((performance.now() - t0) / 1000).toFixed(0)} s; load average ${load0[0]?.toFixed(1)} at start, ${load1[0]?.toFixed(1)} at end`,
);
for (const r of noisy) console.log(`NOISY, not judged (rerun on a quieter machine): ${r.name}: ${r.noisy}`);
process.exit(0);
