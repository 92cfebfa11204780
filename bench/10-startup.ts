/**
 * 10 — start-up: from spawn of the compiled binary to the first 200 on
 * /readyz, with an existing store of 10 000 finished tasks. The client polls
 * every 1 ms on a port chosen beforehand (a tighter loop steals the CPU the
 * server needs to start: Bun.sleep(0.5) returns at once, and busy-polling
 * added ≈ 40 ms to our start-up here).
 * Baseline, same run: compiled hello-world Elysia, spawn → first 200 on /.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runStandalone, since, type BenchContext } from "./lib/bench-context.ts";
import { helloBinary } from "./lib/binaries.ts";
import type { BenchResult } from "./lib/report.ts";
import { seedStore } from "./lib/seed-store.ts";
import { median } from "./lib/stats.ts";

const TASKS = 10_000;

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** ms from spawn to the first 200 of `path`. */
async function timeToReady(argv: string[], port: number, path: string, env: Record<string, string> = {}): Promise<number> {
  const t0 = performance.now();
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "ignore", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } });
  try {
    const deadline = t0 + 10_000;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        await res.arrayBuffer();
        if (res.status === 200) return since(t0);
      } catch {
        // not listening yet
      }
      if (performance.now() > deadline) throw new Error(`${argv[0]} not ready on ${path} within 10 s`);
      if (proc.exitCode !== null) throw new Error(`${argv[0]} exited with ${proc.exitCode}`);
      await Bun.sleep(1);
    }
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

const ROUNDS = (ctx: BenchContext) => Math.max(15, ctx.rounds);

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-bench-startup-"));
  try {
    await seedStore(join(dir, "tasklane.db"), TASKS);
    const hello = await helloBinary();
    const ours: number[] = [];
    const base: number[] = [];
    const ourArgv = (port: number) => [ctx.bin, "serve", "--http-addr", `127.0.0.1:${port}`, "--grpc-addr", "127.0.0.1:0", "--data-dir", dir];
    // One untimed start each: page cache warm for both binaries (and ours then restarts after a SIGKILL every round).
    const wp = freePort();
    await timeToReady([hello], wp, "/", { PORT: String(wp) });
    const wo = freePort();
    await timeToReady(ourArgv(wo), wo, "/readyz");
    // A start takes tens of ms and single starts move by ±30 %: at least 15 rounds for a steady median.
    for (let r = 0; r < ROUNDS(ctx); r++) {
      const hp = freePort();
      base.push(await timeToReady([hello], hp, "/", { PORT: String(hp) }));
      const op = freePort();
      ours.push(await timeToReady(ourArgv(op), op, "/readyz"));
      ctx.log(`10 start-up round ${r + 1}: ours ${ours.at(-1)?.toFixed(1)} ms, hello ${base.at(-1)?.toFixed(1)} ms`);
    }
    const o = median(ours);
    const b = median(base);
    return [
      {
        name: `10 start-up to /readyz, ${TASKS} tasks stored`,
        ours: o,
        baseline: b,
        unit: "ms",
        ratio: o / b,
        target: "<= 2x and <= 100 ms",
        pass: o <= 2 * b && o <= 100,
        note: `${ROUNDS(ctx)} rounds, SIGKILL between (a crash restart); baseline: compiled Elysia hello world`,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await runStandalone(run);
