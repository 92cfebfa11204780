/**
 * 1 — throughput: N no-op tasks (/bin/true) submitted over REST by 8
 * concurrent clients, timed until every one has succeeded (wait for the last
 * ones submitted, then count).
 * Baseline, same run: Bun.spawn + drain both pipes + wait, 8 at a time.
 * Bounds (informational), same run: a minimal REST spawner compiled like
 * tasklane (bench/fixtures/rest-spawner.ts), with tasklane's store and without:
 * what is left of the baseline's rate once a task arrives over REST and, with
 * the store, is persisted as the agent persists it — with nothing else.
 * Peer (informational): supervisord over XML-RPC, start-and-wait, 8 programs.
 *
 * The measured submits go through a lean HTTP/1.1 client (bench/lib/http1-client.ts,
 * one keep-alive connection per client, head and body in one write, as curl sends
 * a small POST): Bun's fetch spends ≈ 60–80 µs of CPU per request on the cores the
 * agent and its tasks share. An info row keeps the same load through fetch.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent } from "./lib/agent-process.ts";
import { runStandalone, since, type BenchContext } from "./lib/bench-context.ts";
import { restSpawnerBinary } from "./lib/binaries.ts";
import { spawnAndWait } from "./lib/drain.ts";
import { Http1Connection } from "./lib/http1-client.ts";
import { readCpuMs } from "./lib/proc-rss.ts";
import { noisyBaseline, type BenchResult } from "./lib/report.ts";
import { startServer } from "./lib/server-process.ts";
import { median } from "./lib/stats.ts";
import { supervisordRate } from "./lib/supervisord-peer.ts";
import { commandSpec, countTasks, submit, taskIdOf, waitTask } from "./lib/task-spec.ts";

const TASKS = 3000;
const CONCURRENCY = 8;
const WARMUP = 100;
const TRUE = "/bin/true";

/** Run `n` jobs with `concurrency` workers (`worker`: the index of the worker running job `i`). */
async function pool(n: number, concurrency: number, job: (i: number, worker: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (next < n) await job(next++, worker);
    }),
  );
}

/** How the measured tasks are submitted: `lean` (the default) or Bun's `fetch`. */
type Client = "lean" | "fetch";

/**
 * A submit function for `CONCURRENCY` workers against `url`: each worker on a
 * connection of its own (lean), or through fetch's pool. Returns the task id.
 */
async function submitter(url: string, client: Client): Promise<{ submit: (spec: Record<string, unknown>, worker: number) => Promise<string>; close: () => void }> {
  if (client === "fetch") return { submit: async (spec) => taskIdOf(await submit(url, spec)), close: () => {} };
  const conns = await Promise.all(Array.from({ length: CONCURRENCY }, () => Http1Connection.open(url)));
  return {
    submit: async (spec, worker) => {
      const res = await conns[worker]!.request("POST", "/api/v1/tasks", JSON.stringify({ spec }));
      if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${res.body}`);
      return taskIdOf(JSON.parse(res.body) as Record<string, unknown>);
    },
    close: () => {
      for (const c of conns) c.close();
    },
  };
}

/** Tasks/s, and CPU per task of the server's process (all threads, children not included). */
interface Rate {
  rate: number;
  cpuUs: number;
}

/** The rate and CPU of process `pid` while `work` submits the TASKS tasks and waits until they are done (`t0`: its start). */
async function measured(pid: number, work: (t0: number) => Promise<void>): Promise<Rate> {
  const cpu0 = readCpuMs(pid);
  const t0 = performance.now();
  await work(t0);
  const ms = since(t0);
  return { rate: (TASKS / ms) * 1000, cpuUs: ((readCpuMs(pid) - cpu0) * 1000) / TASKS };
}

/** Poll `count` every millisecond until it reaches `n`; throws `failure` past `deadline` (performance.now()). */
async function pollUntil(count: () => Promise<number>, n: number, deadline: number, failure: string): Promise<void> {
  while ((await count()) < n) {
    if (performance.now() > deadline) throw new Error(failure);
    await Bun.sleep(1);
  }
}

/** Tasks/s through a fresh agent: submit all, then poll until all succeeded. */
async function ours(bin: string, round: number, client: Client = "lean"): Promise<Rate> {
  await using agent = await startAgent({ bin });
  await pool(WARMUP, CONCURRENCY, (i) => submit(agent.url, commandSpec(`w${round}-${i}`, [TRUE]), true));
  const ids: string[] = [];
  const tasks = await submitter(agent.url, client);
  const result = await measured(agent.pid, async (t0) => {
    await pool(TASKS, CONCURRENCY, async (i, worker) => {
      ids[i] = await tasks.submit(commandSpec(`t${round}-${i}`, [TRUE]), worker);
    });
    // The agent starts queued tasks in submission order: wait for the last ones, then count once
    // (and poll for stragglers). A count every 2 ms while the agent works took ≈ 10 % of its main
    // thread (a SQL count over thousands of rows per poll): the observer slowed what it observed.
    await Promise.all(ids.slice(-CONCURRENCY).map((id) => waitTask(agent.url, id)));
    const succeeded = () => countTasks(agent.url, "succeeded");
    await pollUntil(succeeded, TASKS + WARMUP, t0 + 120_000, "throughput: tasks did not all succeed within 120 s");
  });
  tasks.close();
  const failed = (await countTasks(agent.url, "failed")) + (await countTasks(agent.url, "canceled"));
  if (failed > 0) throw new Error(`throughput: ${failed} tasks did not succeed`);
  return result;
}

/** Tasks/s through a fresh minimal REST spawner (`durable`: with tasklane's store in a temp dir). */
async function bound(durable: boolean, round: number): Promise<Rate> {
  const dir = durable ? mkdtempSync(join(tmpdir(), "tasklane-bench-spawner-")) : undefined;
  try {
    await using spawner = await startServer({
      argv: [await restSpawnerBinary(), ...(dir ? ["--data-dir", dir] : [])],
      announce: /spawner listening http=(\S+)/,
    });
    const url = `http://${spawner.match[1]}`;
    const finished = async () => ((await (await fetch(`${url}/done`)).json()) as { done: number }).done;
    const deadline = performance.now() + 120_000;
    const failure = "throughput bound: runs did not finish within 120 s";
    await pool(WARMUP, CONCURRENCY, (i) => submit(url, commandSpec(`w${round}-${i}`, [TRUE])));
    await pollUntil(finished, WARMUP, deadline, failure);
    const tasks = await submitter(url, "lean");
    const rate = await measured(spawner.pid, async () => {
      await pool(TASKS, CONCURRENCY, (i, worker) => tasks.submit(commandSpec(`t${round}-${i}`, [TRUE]), worker));
      await pollUntil(finished, TASKS + WARMUP, deadline, failure);
    });
    tasks.close();
    return rate;
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

/** Spawns/s of a plain Bun script doing the same work without an agent (`detached`: each child in its own session). */
async function baseline(detached = false): Promise<number> {
  await pool(WARMUP, CONCURRENCY, () => spawnAndWait([TRUE], detached));
  const t0 = performance.now();
  await pool(TASKS, CONCURRENCY, () => spawnAndWait([TRUE], detached));
  return (TASKS / since(t0)) * 1000;
}

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const oursRuns: Rate[] = [];
  const fetchRuns: Rate[] = [];
  const baseRates: number[] = [];
  const detachedRates: number[] = [];
  const storeBounds: Rate[] = [];
  const plainBounds: Rate[] = [];
  const us = (runs: Rate[]) => median(runs.map((x) => x.cpuUs)).toFixed(0);
  for (let r = 0; r < ctx.rounds; r++) {
    baseRates.push(await baseline());
    oursRuns.push(await ours(ctx.bin, r));
    storeBounds.push(await bound(true, r));
    detachedRates.push(await baseline(true));
    plainBounds.push(await bound(false, r));
    fetchRuns.push(await ours(ctx.bin, r, "fetch"));
    ctx.log(
      `1 throughput round ${r + 1}: ours ${oursRuns.at(-1)?.rate.toFixed(0)}/s (through fetch ${fetchRuns.at(-1)?.rate.toFixed(0)}/s), raw ${baseRates.at(-1)?.toFixed(0)}/s, raw detached ${detachedRates.at(-1)?.toFixed(0)}/s; REST spawner with store ${storeBounds.at(-1)?.rate.toFixed(0)}/s, without ${plainBounds.at(-1)?.rate.toFixed(0)}/s`,
    );
  }
  const o = median(oursRuns.map((x) => x.rate));
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
      ...noisyBaseline(baseRates, "spawns/s"),
      note: `${TASKS} tasks x ${ctx.rounds} rounds, REST submit (lean HTTP/1.1 client), wait for the last ${CONCURRENCY} submitted, then count until all succeeded; agent CPU ${us(oursRuns)} us/task (all threads)`,
    },
  ];
  const f = median(fetchRuns.map((x) => x.rate));
  results.push({
    name: "1 same, submitted with fetch",
    ours: f,
    baseline: b,
    unit: "tasks/s",
    ratio: f / b,
    target: "info",
    note: `the same load through Bun's fetch (${ctx.rounds} rounds, one agent each); agent CPU ${us(fetchRuns)} us/task; the client's own CPU shares the 2 cores`,
  });
  for (const [name, runs, what] of [
    ["1 bound: REST spawner + store", storeBounds, "tasklane's spec check and store (task and run written at start, 201 after the durable commit, both again at the exit)"],
    ["1 bound: REST spawner, no store", plainBounds, "tasklane's spec check, no store"],
  ] as const) {
    const rate = median(runs.map((x) => x.rate));
    results.push({
      name,
      ours: rate,
      baseline: b,
      unit: "tasks/s",
      ratio: rate / b,
      target: "bound",
      note: `bench/fixtures/rest-spawner.ts, compiled: Bun.serve + Bun.spawn (detached, pipes drained) with ${what}; nothing else; ${us(runs)} us CPU/task`,
    });
  }
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
