/**
 * 7 — fan-out: 1000 SSE subscribers on one chatty task (a bash loop printing
 * LINES lines as fast as it can). Every subscriber must get every line or an
 * exact `lagged` count (received + skipped = produced), and the task's own
 * run time (its run record: startedAt → finishedAt) may grow by at most 20 %
 * over the same task with no subscriber.
 *
 * The subscribers run in a separate process at nice 19, standing in for
 * clients on other machines: on this 2-core box they would otherwise take
 * the CPU the task needs, which says nothing about the agent.
 */
import { setPriority } from "node:os";
import { join } from "node:path";
import { startAgent, type AgentProcess } from "./lib/agent-process.ts";
import { runStandalone, type BenchContext } from "./lib/bench-context.ts";
import type { BenchResult } from "./lib/report.ts";
import { median } from "./lib/stats.ts";
import { commandSpec, submit, taskIdOf, waitTask } from "./lib/task-spec.ts";

const SUBSCRIBERS = 1000;
const LINES = 100_000;
const ARGV = ["/bin/bash", "-c", `for ((i = 0; i < ${LINES}; i++)); do echo "chatty task line $i: the quick brown fox jumps over the lazy dog"; done`];
const MARKERS = 2;

interface SwarmSummary {
  subscribers: number;
  exact: number;
  complete: number;
  lagged: number;
  minReceived: number;
  maxSkipped: number;
  totalReceived: number;
  totalSkipped: number;
  ms: number;
}

async function runMs(agent: AgentProcess, id: string): Promise<number> {
  const phase = await waitTask(agent.url, id);
  if (phase !== "succeeded") throw new Error(`chatty task ended ${phase}`);
  const runs = ((await (await fetch(`${agent.url}/api/v1/tasks/${id}/runs`)).json()) as { runs: { startedAt: number; finishedAt: number }[] }).runs;
  const r = runs[0];
  if (!r) throw new Error("no run recorded");
  return r.finishedAt - r.startedAt;
}

async function alone(agent: AgentProcess, round: number): Promise<number> {
  const body = await submit(agent.url, commandSpec(`alone-${round}`, ARGV));
  return runMs(agent, taskIdOf(body));
}

async function withSubscribers(agent: AgentProcess, round: number): Promise<{ ms: number; swarm: SwarmSummary }> {
  const body = await submit(agent.url, commandSpec(`fan-${round}`, ARGV, { hold: true }));
  const id = taskIdOf(body);
  // nice(1) before exec, so that every thread of the swarm is niced (Bun's HTTP client runs on its own
  // thread; setpriority on the pid after the start would reach only the main thread).
  const nice = Bun.which("nice");
  const swarm = Bun.spawn(
    [
      ...(nice ? [nice, "-n", "19"] : []),
      process.execPath,
      join(import.meta.dir, "fixtures/sse-swarm.ts"),
      `${agent.url}/api/v1/tasks/${id}/logs`,
      String(SUBSCRIBERS),
      String(LINES + MARKERS),
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(SUBSCRIBERS + 100) } },
  );
  if (!nice) setPriority(swarm.pid, 19);
  const reader = swarm.stdout.getReader();
  const decoder = new TextDecoder();
  let out = "";
  while (!out.includes("ready")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`swarm exited: ${await new Response(swarm.stderr).text()}`);
    out += decoder.decode(value, { stream: true });
  }
  const started = await fetch(`${agent.url}/api/v1/tasks/${id}/start`, { method: "POST" });
  if (started.status !== 200) throw new Error(`start answered ${started.status}`);
  const ms = await runMs(agent, id);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    out += decoder.decode(value, { stream: true });
  }
  const code = await swarm.exited;
  const line = out.split("\n").find((l) => l.startsWith("{"));
  if (code !== 0 || !line) throw new Error(`swarm failed (${code}): ${out} ${await new Response(swarm.stderr).text()}`);
  return { ms, swarm: JSON.parse(line) as SwarmSummary };
}

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  await using agent = await startAgent({ bin: ctx.bin });
  // Warm-up, untimed: the task alone and once with subscribers (JIT of the fan-out path).
  await alone(agent, -1);
  await withSubscribers(agent, -1);
  const base: number[] = [];
  const ours: number[] = [];
  const swarms: SwarmSummary[] = [];
  const rounds = Math.max(5, ctx.rounds); // single runs of a bash loop vary by ±30 % here
  for (let r = 0; r < rounds; r++) {
    base.push(await alone(agent, r));
    const w = await withSubscribers(agent, r);
    ours.push(w.ms);
    swarms.push(w.swarm);
    ctx.log(
      `7 fan-out round ${r + 1}: task alone ${base.at(-1)} ms, with ${SUBSCRIBERS} subscribers ${w.ms} ms; exact ${w.swarm.exact}/${SUBSCRIBERS}, complete ${w.swarm.complete}, lagged ${w.swarm.lagged} (max skipped ${w.swarm.maxSkipped})`,
    );
  }
  const o = median(ours);
  const b = median(base);
  const allExact = swarms.every((s) => s.exact === SUBSCRIBERS);
  const last = swarms.at(-1);
  return [
    {
      name: `7 ${SUBSCRIBERS} SSE subscribers, task slowdown`,
      ours: o,
      baseline: b,
      unit: "ms run",
      ratio: o / b,
      target: "<= 1.2x, all exact",
      pass: o / b <= 1.2 && allExact,
      note: `${LINES} lines, ${rounds} rounds, per-round ratios ${ours.map((x, i) => (x / (base[i] ?? x)).toFixed(2)).join("/")}; exact ${swarms.map((s) => s.exact).join("/")}, complete ${swarms.map((s) => s.complete).join("/")}, lagged ${swarms.map((s) => s.lagged).join("/")}; last round delivered ${last?.totalReceived} lines, skipped ${last?.totalSkipped}`,
    },
  ];
}

if (import.meta.main) await runStandalone(run);
