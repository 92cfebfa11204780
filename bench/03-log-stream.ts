/**
 * 3 — log streaming: a task printing 1 000 000 lines of 100 bytes, delivered
 * to one SSE subscriber and one gRPC StreamTaskLogs subscriber at once; the
 * figure is lines/s from `start` until both streams have ended.
 * Baseline, same run: a Bun script spawning the same child, reading its
 * stdout and splitting it into lines.
 * Main row: --log-retain 2000000 (the ring holds the whole run, nothing may
 * be lost). Second row: default retention (1000), counting `lagged`.
 */
import { encodeLogEvent } from "../src/grpc/convert.ts";
import { startAgent } from "./lib/agent-process.ts";
import { grpcEchoBinary } from "./lib/binaries.ts";
import { startServer } from "./lib/server-process.ts";
import { runStandalone, since, type BenchContext } from "./lib/bench-context.ts";
import { readGrpcLogs, rawGrpcClient, readSse, type StreamCount } from "./lib/log-consumers.ts";
import type { BenchResult } from "./lib/report.ts";
import { median } from "./lib/stats.ts";
import { commandSpec, submit, taskIdOf } from "./lib/task-spec.ts";

const LINES = 1_000_000;
const LINE = "x".repeat(99); // + "\n" = 100 bytes
const ARGV = ["/bin/sh", "-c", `yes ${LINE} | head -n ${LINES}`];
/** runStarted + runFinished. */
const MARKERS = 2;

/** The plain Bun way: read stdout, decode per chunk, split on "\n", keep the partial tail. */
async function baseline(): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn(ARGV, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const reader = p.stdout.getReader();
  const decoder = new TextDecoder();
  let tail = "";
  let lines = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const parts = (tail + decoder.decode(value, { stream: true })).split("\n");
    tail = parts.pop() ?? "";
    lines += parts.length;
  }
  await p.exited;
  if (lines !== LINES) throw new Error(`baseline counted ${lines} lines`);
  return (LINES / since(t0)) * 1000;
}

interface OursResult {
  rate: number;
  sse: StreamCount;
  grpc: StreamCount;
}

async function ours(bin: string, args: string[]): Promise<OursResult> {
  await using agent = await startAgent({ bin, args });
  const body = await submit(agent.url, commandSpec("stream", ARGV, { hold: true }));
  const id = taskIdOf(body);
  const client = rawGrpcClient(agent.grpcAddr);
  try {
    const sse = readSse(`${agent.url}/api/v1/tasks/${id}/logs`);
    const grpc = readGrpcLogs(client, id);
    await Bun.sleep(200); // both subscriptions attached (outside the timed part)
    const t0 = performance.now();
    const started = await fetch(`${agent.url}/api/v1/tasks/${id}/start`, { method: "POST" });
    if (started.status !== 200) throw new Error(`start answered ${started.status}`);
    const [s, g] = await Promise.all([sse, grpc.done]);
    const ms = since(t0);
    for (const [name, c] of [["sse", s], ["grpc", g]] as const) {
      const total = c.chunks + c.markers + c.skipped;
      if (total !== LINES + MARKERS) throw new Error(`${name}: ${c.chunks} lines + ${c.markers} markers + ${c.skipped} skipped != ${LINES + MARKERS}`);
    }
    return { rate: (LINES / ms) * 1000, sse: s, grpc: g };
  } finally {
    client.close();
  }
}

const FULL = ["--log-retain", "2000000", "--log-retain-bytes", "1GiB"];

/**
 * The ceiling any grpc-js server has here for one message per line: a bare
 * compiled grpc-js server streaming LINES copies of one pre-encoded chunk
 * message (no protobuf work) to the same client. Messages/s.
 */
async function grpcCeiling(): Promise<number> {
  await using echo = await startServer({ argv: [await grpcEchoBinary()], announce: /echo listening grpc=(\S+)/ });
  const client = rawGrpcClient(echo.match[1] as string);
  try {
    const message = encodeLogEvent({ type: "chunk", attempt: 1, stream: "stdout", seq: 123_456, ts: Date.now(), line: LINE });
    const request = Buffer.concat([Buffer.alloc(4), message]);
    request.writeUInt32LE(LINES, 0);
    const t0 = performance.now();
    let n = 0;
    await new Promise<void>((resolve, reject) => {
      const call = client.makeServerStreamRequest<Buffer, Buffer>("/bench.Echo/Flood", (b: Buffer) => b, (b: Buffer) => b, request);
      call.on("data", () => n++);
      call.on("error", reject);
      call.on("end", resolve);
    });
    if (n !== LINES) throw new Error(`flood delivered ${n} messages`);
    return (LINES / since(t0)) * 1000;
  } finally {
    client.close();
  }
}

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const base: number[] = [];
  const full: OursResult[] = [];
  const dflt: OursResult[] = [];
  for (let r = 0; r < ctx.rounds; r++) {
    base.push(await baseline());
    full.push(await ours(ctx.bin, FULL));
    dflt.push(await ours(ctx.bin, []));
    const f = full.at(-1);
    const d = dflt.at(-1);
    ctx.log(
      `3 log stream round ${r + 1}: raw ${base.at(-1)?.toFixed(0)} lines/s, ours (retain 2M) ${f?.rate.toFixed(0)}, ours (default) ${d?.rate.toFixed(0)} lines/s, lagged sse ${d?.sse.skipped} grpc ${d?.grpc.skipped}`,
    );
  }
  const ceiling = await grpcCeiling();
  ctx.log(`3 log stream: bare grpc-js streaming ceiling ${ceiling.toFixed(0)} messages/s`);
  const b = median(base);
  const o = median(full.map((x) => x.rate));
  const od = median(dflt.map((x) => x.rate));
  const lost = Math.max(...full.map((x) => x.sse.skipped + x.grpc.skipped));
  const lagSse = dflt.map((x) => x.sse.skipped).join("/");
  const lagGrpc = dflt.map((x) => x.grpc.skipped).join("/");
  return [
    {
      name: "3 1M lines -> SSE + gRPC (retain 2M)",
      ours: o,
      baseline: b,
      unit: "lines/s",
      ratio: o / b,
      target: ">= 0.5x, 0 lost",
      pass: o / b >= 0.5 && lost === 0,
      note: `lines lost (lagged) over ${ctx.rounds} rounds: ${lost}`,
    },
    {
      name: "3 ceiling: bare grpc-js, 1M messages",
      ours: o,
      baseline: ceiling,
      unit: "lines/s",
      ratio: o / ceiling,
      target: "bound",
      note: `a compiled grpc-js server streaming 1M pre-encoded chunk messages: ${(ceiling / b).toFixed(2)}x the splitting baseline`,
    },
    {
      name: "3 1M lines -> SSE + gRPC (default retain)",
      ours: od,
      baseline: b,
      unit: "lines/s",
      ratio: od / b,
      target: "exact lagged",
      note: `lagged (skipped, exact) per round: sse ${lagSse}, grpc ${lagGrpc}`,
    },
  ];
}

if (import.meta.main) await runStandalone(run);
