/**
 * 6 — gRPC read path: solti.v1.SoltiApi/GetTaskStatus of a finished task,
 * 50 calls in flight from one grpc-js client (raw bytes, no decoding).
 * Baseline, same run: a compiled bare grpc-js server echoing the request
 * bytes on the same method path, driven by the very same client code.
 */
import type { Client } from "@grpc/grpc-js";
import { startAgent } from "./lib/agent-process.ts";
import { runStandalone, type BenchContext } from "./lib/bench-context.ts";
import { grpcEchoBinary } from "./lib/binaries.ts";
import { rawGrpcClient, taskIdRequest } from "./lib/log-consumers.ts";
import { noisyBaseline, type BenchResult } from "./lib/report.ts";
import { startServer } from "./lib/server-process.ts";
import { median } from "./lib/stats.ts";
import { commandSpec, submit } from "./lib/task-spec.ts";

const IN_FLIGHT = 50;
const WARMUP_MS = 5000;
const DURATION_MS = 3000;
const identity = (b: Buffer) => b;

/** Calls/s with `IN_FLIGHT` outstanding calls for `ms`. */
async function load(client: Client, request: Buffer, ms: number): Promise<{ rate: number; bytes: number }> {
  let done = 0;
  let bytes = 0;
  const end = performance.now() + ms;
  const t0 = performance.now();
  const one = () =>
    new Promise<void>((resolve, reject) => {
      client.makeUnaryRequest<Buffer, Buffer>("/solti.v1.SoltiApi/GetTaskStatus", identity, identity, request, (err, res) => {
        if (err) reject(err);
        else {
          bytes = res?.length ?? 0;
          done++;
          resolve();
        }
      });
    });
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  return { rate: (done / (performance.now() - t0)) * 1000, bytes };
}

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  await using agent = await startAgent({ bin: ctx.bin });
  const body = await submit(agent.url, commandSpec("grpc", ["/bin/true"], { labels: { team: "bench" } }), true);
  const request = taskIdRequest((body.task as { metadata: { id: string } }).metadata.id);
  await using echo = await startServer({ argv: [await grpcEchoBinary()], announce: /echo listening grpc=(\S+)/ });
  const ours = rawGrpcClient(agent.grpcAddr);
  const base = rawGrpcClient(echo.match[1] as string);
  try {
    // Warm-up both until the JIT has settled: the agent's larger code base takes 5–10 s
    // under load (a 1 s warm-up left its first rounds partly unoptimised and swinging).
    await load(ours, request, WARMUP_MS);
    await load(base, request, WARMUP_MS);
    const o: number[] = [];
    const b: number[] = [];
    let size = 0;
    for (let r = 0; r < ctx.rounds; r++) {
      b.push((await load(base, request, DURATION_MS)).rate);
      const res = await load(ours, request, DURATION_MS);
      o.push(res.rate);
      size = res.bytes;
      ctx.log(`6 grpc unary round ${r + 1}: ours ${o.at(-1)?.toFixed(0)} calls/s, echo ${b.at(-1)?.toFixed(0)} calls/s`);
    }
    const om = median(o);
    const bm = median(b);
    return [
      {
        name: "6 gRPC GetTaskStatus, 50 in flight",
        ours: om,
        baseline: bm,
        unit: "calls/s",
        ratio: om / bm,
        target: ">= 0.8x",
        pass: om / bm >= 0.8,
        ...noisyBaseline(b, "calls/s"),
        note: `${DURATION_MS / 1000} s x ${ctx.rounds} rounds; response ${size} B vs echo ${request.length} B; baseline: compiled bare grpc-js echo`,
      },
    ];
  } finally {
    ours.close();
    base.close();
  }
}

if (import.meta.main) await runStandalone(run);
