/**
 * What every benchmark gets from `bench/run.ts` (or from its own
 * `import.meta.main` block when run alone), and the shared driver.
 */
import { tasklaneBinary } from "./binaries.ts";
import { formatTable, type BenchResult } from "./report.ts";

export interface BenchContext {
  /** The compiled tasklane executable. */
  bin: string;
  /** Rounds of (ours, baseline) pairs; each benchmark alternates them. */
  rounds: number;
  /** Progress line on stderr. */
  log(message: string): void;
}

export type Benchmark = (ctx: BenchContext) => Promise<BenchResult[]>;

/** Rounds from `BENCH_ROUNDS` (default 3, at least 1). */
export function defaultRounds(): number {
  const n = Number(process.env.BENCH_ROUNDS ?? 3);
  return Number.isInteger(n) && n >= 1 ? n : 3;
}

export function createContext(bin: string): BenchContext {
  const t0 = performance.now();
  return {
    bin,
    rounds: defaultRounds(),
    log: (message) => console.error(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${message}`),
  };
}

/** Run one benchmark file on its own: build, run, print its rows. */
export async function runStandalone(bench: Benchmark): Promise<void> {
  const ctx = createContext(await tasklaneBinary());
  const results = await bench(ctx);
  console.log(formatTable(results));
  process.exit(0);
}

/** ms since `t0` (performance.now()). */
export function since(t0: number): number {
  return performance.now() - t0;
}
