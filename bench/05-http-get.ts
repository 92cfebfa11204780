/**
 * 5 — REST read path: GET /api/v1/tasks/{id} of a finished task, 50
 * concurrent keep-alive connections (wrk, or a Bun fetch generator).
 * Baseline, same run: a compiled hello-world Elysia route, same load.
 */
import { startAgent } from "./lib/agent-process.ts";
import { runStandalone, type BenchContext } from "./lib/bench-context.ts";
import { helloBinary } from "./lib/binaries.ts";
import { httpLoad, type LoadResult } from "./lib/http-load.ts";
import { noisyBaseline, type BenchResult } from "./lib/report.ts";
import { startServer } from "./lib/server-process.ts";
import { median } from "./lib/stats.ts";
import { commandSpec, submit } from "./lib/task-spec.ts";

const CONNECTIONS = 50;
const DURATION_MS = 3000;
const WARMUP_MS = 5000;

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const hello = await helloBinary();
  await using agent = await startAgent({ bin: ctx.bin });
  const body = await submit(agent.url, commandSpec("get", ["/bin/true"], { labels: { team: "bench" } }), true);
  const id = (body.task as { metadata: { id: string } }).metadata.id;
  await using base = await startServer({ argv: [hello], announce: /hello listening http=(\S+)/ });
  const taskUrl = `${agent.url}/api/v1/tasks/${id}`;
  const helloUrl = `http://${base.match[1]}/`;
  // Warm-up both until the JIT has settled (the agent's request path takes several seconds under load).
  await httpLoad(taskUrl, CONNECTIONS, WARMUP_MS);
  await httpLoad(helloUrl, CONNECTIONS, WARMUP_MS);
  const ours: LoadResult[] = [];
  const bases: LoadResult[] = [];
  for (let r = 0; r < ctx.rounds; r++) {
    bases.push(await httpLoad(helloUrl, CONNECTIONS, DURATION_MS));
    ours.push(await httpLoad(taskUrl, CONNECTIONS, DURATION_MS));
    ctx.log(`5 http get round ${r + 1}: ours ${ours.at(-1)?.rps.toFixed(0)} req/s, hello ${bases.at(-1)?.rps.toFixed(0)} req/s`);
  }
  const o = median(ours.map((x) => x.rps));
  const b = median(bases.map((x) => x.rps));
  const errors = ours.reduce((a, x) => a + x.errors, 0);
  // What a log line per request costs: the same agent with --log-level debug (successful reads are logged at debug).
  await using verbose = await startAgent({ bin: ctx.bin, args: ["--log-level", "debug"] });
  const qBody = await submit(verbose.url, commandSpec("get", ["/bin/true"], { labels: { team: "bench" } }), true);
  const qUrl = `${verbose.url}/api/v1/tasks/${(qBody.task as { metadata: { id: string } }).metadata.id}`;
  await httpLoad(qUrl, CONNECTIONS, WARMUP_MS);
  const q = await httpLoad(qUrl, CONNECTIONS, DURATION_MS);
  const qb = await httpLoad(helloUrl, CONNECTIONS, DURATION_MS);
  return [
    {
      name: "5 GET /api/v1/tasks/{id} c=50",
      ours: o,
      baseline: b,
      unit: "req/s",
      ratio: o / b,
      target: ">= 0.6x",
      pass: o / b >= 0.6 && errors === 0,
      ...noisyBaseline(
        bases.map((x) => x.rps),
        "req/s",
      ),
      note: `${ours[0]?.tool}, ${DURATION_MS / 1000} s x ${ctx.rounds} rounds, errors ${errors}; baseline: compiled Elysia hello world`,
    },
    {
      name: "5 same, --log-level debug",
      ours: q.rps,
      baseline: qb.rps,
      unit: "req/s",
      ratio: q.rps / qb.rps,
      target: "info",
      note: "one round: with a JSON log line per request on stderr",
    },
  ];
}

if (import.meta.main) await runStandalone(run);
