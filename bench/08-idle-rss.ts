/**
 * 8 — idle RSS of the compiled binary: started with a fresh data dir, left
 * idle for 2 s after it announced itself, VmRSS read from /proc. For scale,
 * the same figure for the compiled hello-world Elysia (informational).
 */
import { startAgent } from "./lib/agent-process.ts";
import { runStandalone, type BenchContext } from "./lib/bench-context.ts";
import { helloBinary } from "./lib/binaries.ts";
import { readRss, type Rss } from "./lib/proc-rss.ts";
import type { BenchResult } from "./lib/report.ts";
import { startServer } from "./lib/server-process.ts";
import { median } from "./lib/stats.ts";

const IDLE_MS = 2000;

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const ours: Rss[] = [];
  const hello: Rss[] = [];
  const helloBin = await helloBinary();
  for (let r = 0; r < ctx.rounds; r++) {
    {
      await using agent = await startAgent({ bin: ctx.bin });
      await fetch(`${agent.url}/readyz`);
      await Bun.sleep(IDLE_MS);
      ours.push(readRss(agent.pid));
    }
    {
      await using base = await startServer({ argv: [helloBin], announce: /hello listening http=(\S+)/ });
      await fetch(`http://${base.match[1]}/`);
      await Bun.sleep(IDLE_MS);
      hello.push(readRss(base.pid));
    }
    ctx.log(`8 idle rss round ${r + 1}: ours ${ours.at(-1)?.total.toFixed(1)} MiB (anon ${ours.at(-1)?.anon.toFixed(1)}, file ${ours.at(-1)?.file.toFixed(1)}), hello ${hello.at(-1)?.total.toFixed(1)} MiB`);
  }
  const o = median(ours.map((x) => x.total));
  const h = median(hello.map((x) => x.total));
  return [
    {
      name: "8 idle RSS",
      ours: o,
      baseline: h,
      unit: "MiB",
      target: "<= 50 MiB",
      pass: o <= 50,
      note: `anon ${median(ours.map((x) => x.anon)).toFixed(1)} + file-backed ${median(ours.map((x) => x.file)).toFixed(1)} MiB; baseline column: compiled Elysia hello world (anon ${median(hello.map((x) => x.anon)).toFixed(1)} + file ${median(hello.map((x) => x.file)).toFixed(1)})`,
    },
  ];
}

if (import.meta.main) await runStandalone(run);
