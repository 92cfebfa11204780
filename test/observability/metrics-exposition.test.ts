/**
 * The agent's own Prometheus exposition (src/observability/metrics.ts)
 * without an agent: sample values, histogram buckets, label escaping, the
 * text-format framing, and prom-client staying unloaded until the first
 * scrape (it costs start-up time; bench/README.md, benchmark 10).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createMetrics, EXPOSITION_CONTENT_TYPE, withoutEmptyLoopDelay } from "../../src/observability/metrics.ts";
import { PHASES, type Phase, type Task, type TaskRun } from "../../src/tasks/model.ts";
import type { SupervisorStats } from "../../src/tasks/supervisor.ts";
import { createTaskEvents } from "../../src/tasks/task-events.ts";
import { parseExposition, valueOf } from "./prom-text.ts";

const STATS: SupervisorStats = { active: 3, running: 2, queued: 1, waitingCapacity: 4, backoff: 5, held: 6 };

function setup() {
  const events = createTaskEvents((err) => {
    throw err;
  });
  let now = 1_000_000;
  const counts = Object.fromEntries(PHASES.map((p, i) => [p, i * 10])) as Record<Phase, number>;
  const metrics = createMetrics({ events, stats: () => STATS, countByPhase: () => counts, activeSlots: () => ["a", "b", "a"], clock: () => now });
  return { events, metrics, advance: (ms: number) => (now += ms), now: () => now };
}

function task(phase: Phase, attempt: number, createdAt: number): Task {
  return { metadata: { id: "tsk_1", createdAt }, status: { phase, attempt } } as unknown as Task;
}

function run(phase: Phase, startedAt: number, finishedAt: number): TaskRun {
  return { phase, startedAt, finishedAt } as unknown as TaskRun;
}

async function scrape(metrics: ReturnType<typeof createMetrics>) {
  const [type, text] = await metrics.exposition();
  return { type, text, exp: parseExposition(text) };
}

describe("metrics exposition", () => {
  test("gauges read at scrape time, counters and label-less series from the start", async () => {
    const { metrics } = setup();
    const { type, text, exp } = await scrape(metrics);
    expect(type).toBe(EXPOSITION_CONTENT_TYPE);
    expect(type).toStartWith("text/plain; version=0.0.4");
    for (const [i, p] of PHASES.entries()) expect(valueOf(exp, "tasklane_tasks", { phase: p })).toBe(i * 10);
    expect(valueOf(exp, "tasklane_tasks_running")).toBe(2);
    expect(valueOf(exp, "tasklane_queue_depth", { reason: "slot" })).toBe(1);
    expect(valueOf(exp, "tasklane_queue_depth", { reason: "capacity" })).toBe(4);
    expect(valueOf(exp, "tasklane_queue_depth", { reason: "backoff" })).toBe(5);
    expect(valueOf(exp, "tasklane_queue_depth", { reason: "held" })).toBe(6);
    // Label-less counters and histograms exist at 0 before anything happened.
    expect(text).toContain("\ntasklane_tasks_submitted_total 0\n");
    expect(text).toContain("\ntasklane_submit_to_start_seconds_count 0\n");
    expect(text).toContain('\ntasklane_submit_to_start_seconds_bucket{le="+Inf"} 0\n');
    // Pre-created label values.
    for (const t of ["sse", "websocket", "grpc"]) expect(text).toContain(`\ntasklane_stream_subscribers{transport="${t}"} 0\n`);
    for (const k of ["logs", "watch"]) expect(text).toContain(`\ntasklane_lagged_events_total{kind="${k}"} 0\n`);
    // A labelled family without any series still declares itself.
    expect(exp.types.get("tasklane_http_requests_total")).toBe("counter");
    expect(exp.samples.some((s) => s.name === "tasklane_http_requests_total")).toBe(false);
    // Framing: HELP then TYPE per family, a blank line between families, one newline at the end of ours.
    expect(text).toStartWith("# HELP tasklane_tasks Stored tasks by phase.\n# TYPE tasklane_tasks gauge\n");
    expect(text).toContain("\n\n# HELP tasklane_tasks_running Runs in progress.\n# TYPE tasklane_tasks_running gauge\ntasklane_tasks_running 2\n");
  });

  test("task events drive the counters and histograms", async () => {
    const { events, metrics, now } = setup();
    const t0 = now();
    // A new task's first transition is not an acceptance (its flush may still fail): `submitted()` is.
    events.transition(task("pending", 0, t0 - 30), undefined);
    events.transition(task("pending", 0, t0 - 30), undefined);
    events.transition(task("pending", 0, t0 - 30), undefined);
    metrics.submitted();
    metrics.submitted();
    events.transition(task("running", 1, t0 - 30), "pending");
    events.transition(task("running", 2, t0 - 30), "backoff" as Phase);
    events.runStarted(task("running", 1, t0), run("running", t0, t0));
    events.runFinished(task("succeeded", 1, t0), run("succeeded", t0, t0 + 2_000));
    events.runFinished(task("failed", 1, t0), run("failed", t0, t0 + 7));
    events.output("stdout", 3, 30);
    events.output("stderr", 1, 5);
    events.output("stdout", 2, 20);
    const { exp } = await scrape(metrics);
    expect(valueOf(exp, "tasklane_tasks_submitted_total")).toBe(2);
    expect(valueOf(exp, "tasklane_runs_started_total")).toBe(1);
    expect(valueOf(exp, "tasklane_runs_finished_total", { outcome: "succeeded" })).toBe(1);
    expect(valueOf(exp, "tasklane_runs_finished_total", { outcome: "failed" })).toBe(1);
    expect(valueOf(exp, "tasklane_log_lines_total", { stream: "stdout" })).toBe(5);
    expect(valueOf(exp, "tasklane_log_bytes_total", { stream: "stdout" })).toBe(50);
    expect(valueOf(exp, "tasklane_log_lines_total", { stream: "stderr" })).toBe(1);
    // Only the first attempt's start is a submit-to-start latency (30 ms → le 0.05 and up).
    expect(valueOf(exp, "tasklane_submit_to_start_seconds_count")).toBe(1);
    expect(valueOf(exp, "tasklane_submit_to_start_seconds_sum")).toBeCloseTo(0.03, 9);
    expect(valueOf(exp, "tasklane_submit_to_start_seconds_bucket", { le: "0.025" })).toBe(0);
    expect(valueOf(exp, "tasklane_submit_to_start_seconds_bucket", { le: "0.05" })).toBe(1);
    // 2 s succeeded run: buckets are cumulative, +Inf is the count.
    const dur = (le: string) => valueOf(exp, "tasklane_run_duration_seconds_bucket", { outcome: "succeeded", le });
    expect([dur("1"), dur("5"), dur("3600"), dur("+Inf")]).toEqual([0, 1, 1, 1]);
    expect(valueOf(exp, "tasklane_run_duration_seconds_sum", { outcome: "succeeded" })).toBe(2);
    expect(valueOf(exp, "tasklane_run_duration_seconds_bucket", { outcome: "failed", le: "0.01" })).toBe(1);
    expect(valueOf(exp, "tasklane_run_duration_seconds_bucket", { outcome: "failed", le: "0.005" })).toBe(0);
    metrics.close();
    events.runStarted(task("running", 1, t0), run("running", t0, t0));
    expect(valueOf((await scrape(metrics)).exp, "tasklane_runs_started_total")).toBe(1);
  });

  test("HTTP and gRPC requests, stream subscribers, lagged events", async () => {
    const { metrics } = setup();
    metrics.httpRequest("/api/v1/tasks/:id", "GET", 200, 0.0004);
    metrics.httpRequest("/api/v1/tasks/:id", "GET", 200, 0.003);
    metrics.httpRequest("/api/v1/tasks/:id", "GET", 404, 0.0001);
    metrics.httpRequest("/x", "BREW", 405, 0.0001);
    metrics.grpcRequest("solti.v1.SoltiApi/GetTaskStatus", "OK", 0.002);
    const closeA = metrics.streamOpened("sse");
    const closeB = metrics.streamOpened("sse");
    metrics.streamOpened("grpc");
    closeA();
    closeA(); // idempotent
    metrics.lagged("logs", 7);
    metrics.lagged("logs", 3);
    const { exp } = await scrape(metrics);
    expect(valueOf(exp, "tasklane_http_requests_total", { route: "/api/v1/tasks/:id", method: "GET", status: "200" })).toBe(2);
    expect(valueOf(exp, "tasklane_http_requests_total", { route: "/api/v1/tasks/:id", method: "GET", status: "404" })).toBe(1);
    expect(valueOf(exp, "tasklane_http_requests_total", { route: "/x", method: "OTHER", status: "405" })).toBe(1);
    const le = (b: string) => valueOf(exp, "tasklane_http_request_duration_seconds_bucket", { route: "/api/v1/tasks/:id", method: "GET", le: b });
    expect([le("0.0005"), le("0.001"), le("0.005"), le("+Inf")]).toEqual([2, 2, 3, 3]);
    expect(valueOf(exp, "tasklane_http_request_duration_seconds_count", { route: "/api/v1/tasks/:id", method: "GET" })).toBe(3);
    expect(valueOf(exp, "tasklane_grpc_requests_total", { method: "solti.v1.SoltiApi/GetTaskStatus", code: "OK" })).toBe(1);
    expect(valueOf(exp, "tasklane_grpc_request_duration_seconds_count", { method: "solti.v1.SoltiApi/GetTaskStatus" })).toBe(1);
    expect(valueOf(exp, "tasklane_stream_subscribers", { transport: "sse" })).toBe(1);
    expect(valueOf(exp, "tasklane_stream_subscribers", { transport: "grpc" })).toBe(1);
    expect(valueOf(exp, "tasklane_lagged_events_total", { kind: "logs" })).toBe(10);
    closeB();
    expect(valueOf((await scrape(metrics)).exp, "tasklane_stream_subscribers", { transport: "sse" })).toBe(0);
  });

  test("label values are escaped (backslash, double quote, newline) and `le` comes first", async () => {
    const { metrics } = setup();
    const route = 'a\\b"c\nd';
    metrics.httpRequest(route, "GET", 200, 0.5);
    const { text, exp } = await scrape(metrics);
    expect(text).toContain('tasklane_http_requests_total{route="a\\\\b\\"c\\nd",method="GET",status="200"} 1\n');
    expect(text).toContain('tasklane_http_request_duration_seconds_bucket{le="0.5",route="a\\\\b\\"c\\nd",method="GET"} 1\n');
    expect(valueOf(exp, "tasklane_http_requests_total", { route })).toBe(1);
  });

  test("process metrics are appended after the agent's own, with their standard names", async () => {
    const { metrics } = setup();
    const { text, exp } = await scrape(metrics);
    expect(exp.types.get("process_cpu_seconds_total")).toBe("counter");
    expect(exp.types.has("process_resident_memory_bytes")).toBe(true);
    for (const bad of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) expect(exp.types.has(bad)).toBe(false);
    // Bun has no `gc` performance entries: a GC histogram would stay empty forever, which reads as "no GC".
    expect(exp.types.has("nodejs_gc_duration_seconds")).toBe(false);
    expect([...exp.types.keys()].filter((name) => /(^|_)gc(_|$)/.test(name))).toEqual([]);
    expect(text.indexOf("# HELP tasklane_grpc_request_duration_seconds")).toBeLessThan(text.indexOf("# HELP process_cpu_seconds_total"));
  });

  test("an event-loop delay summary of no samples is left out, not a 292-year delay and NaN", async () => {
    const { metrics } = setup();
    // Back to back, in one turn of the event loop: the second scrape's interval has no sample.
    await scrape(metrics);
    const { text } = await scrape(metrics);
    for (const name of ["min", "max", "mean", "stddev", "p50", "p90", "p99"]) {
      expect(text).toContain(`# TYPE nodejs_eventloop_lag_${name}_seconds gauge`);
      expect(text).not.toMatch(new RegExp(`^nodejs_eventloop_lag_${name}_seconds `, "m"));
    }
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    expect(text).not.toMatch(/ (NaN|Nan)$/m);
    // A summary of samples goes out as prom-client renders it.
    const measured = "nodejs_eventloop_lag_min_seconds 0.000071664\nnodejs_eventloop_lag_mean_seconds 0.000199\n";
    expect(withoutEmptyLoopDelay(measured)).toBe(measured);
  });

  test("the JSON summary", () => {
    const { events, metrics } = setup();
    events.transition(task("pending", 0, 0), undefined);
    events.transition(task("pending", 0, 0), undefined);
    metrics.submitted();
    const { timestamp, submittedPerSecond, ...rest } = metrics.summary();
    expect(timestamp).toBe(1_000_000);
    expect(submittedPerSecond).toBeCloseTo(1 / 60, 9);
    expect(rest).toEqual({
      tasksByPhase: Object.fromEntries(PHASES.map((p, i) => [p, i * 10])),
      activeBySlot: { a: 2, b: 1 },
      running: 2,
      queued: 5,
      backoff: 5,
      held: 6,
      submittedTotal: 1,
    });
  });

  test("prom-client is not loaded until the first scrape", async () => {
    // A fresh process: this test process may have loaded prom-client already.
    const script = `
      const loaded = () => Object.keys(require.cache).some((k) => k.includes("/node_modules/prom-client/"));
      const { createMetrics } = await import(${JSON.stringify(join(import.meta.dir, "../../src/observability/metrics.ts"))});
      const { createTaskEvents } = await import(${JSON.stringify(join(import.meta.dir, "../../src/tasks/task-events.ts"))});
      const stats = { active: 0, running: 0, queued: 0, waitingCapacity: 0, backoff: 0, held: 0 };
      const m = createMetrics({ events: createTaskEvents(), stats: () => stats, countByPhase: () => ({}) });
      m.httpRequest("/readyz", "GET", 200, 0.001);
      const before = loaded();
      const [, text] = await m.exposition();
      console.log(JSON.stringify({ before, after: loaded(), proc: text.includes("process_cpu_seconds_total") }));
    `;
    const p = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
    expect({ code, err }).toEqual({ code: 0, err: "" });
    expect(JSON.parse(out)).toEqual({ before: false, after: true, proc: true });
  });
});
