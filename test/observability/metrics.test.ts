/**
 * GET /metrics (Prometheus text) and GET /api/v1/metrics (JSON summary)
 * against a real agent: values across a task's life, naming rules, bounded
 * cardinality, stream subscriber gauges, HTTP and gRPC request counters.
 */
import { describe, expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { MetricsSummarySchema } from "../../src/observability/metrics.ts";
import { PHASES } from "../../src/tasks/model.ts";
import { status as grpcStatus } from "@grpc/grpc-js";
import { collect, protoClient, serverStream, unary } from "../grpc/proto-client.ts";
import { bashSpec, commandSpec, startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { submitOk, waitTerminal } from "../helpers/task-control.ts";
import { familyOf, parseExposition, seriesKey, valueOf, type Exposition } from "./prom-text.ts";

async function scrape(a: TestAgent): Promise<Exposition> {
  const res = await a.request("GET", "/metrics");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
  return parseExposition(await res.text());
}

/** Poll the scrape until `ok` holds (for gauges that change when a connection is torn down, not on a task event). */
async function scrapeUntil(a: TestAgent, ok: (e: Exposition) => boolean, what: string): Promise<Exposition> {
  for (let i = 0; i < 200; i++) {
    const e = await scrape(a);
    if (ok(e)) return e;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error(`metrics never showed ${what}`);
}

describe("GET /metrics", () => {
  test("values follow a task's life", async () => {
    await using a = await startAgent();
    const before = await scrape(a);
    const { id } = await submitOk(a, bashSpec("echo one; echo two; echo err >&2"));
    expect((await waitTerminal(a, id)).status.phase).toBe("succeeded");
    const after = await scrape(a);
    const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels);

    expect({
      submitted: delta("tasklane_tasks_submitted_total"),
      started: delta("tasklane_runs_started_total"),
      finishedOk: delta("tasklane_runs_finished_total", { outcome: "succeeded" }),
      finishedAll: delta("tasklane_runs_finished_total"),
      succeeded: delta("tasklane_tasks", { phase: "succeeded" }),
      pending: delta("tasklane_tasks", { phase: "pending" }),
      running: valueOf(after, "tasklane_tasks_running"),
      stdoutLines: delta("tasklane_log_lines_total", { stream: "stdout" }),
      stderrLines: delta("tasklane_log_lines_total", { stream: "stderr" }),
      stdoutBytes: delta("tasklane_log_bytes_total", { stream: "stdout" }),
      stderrBytes: delta("tasklane_log_bytes_total", { stream: "stderr" }),
      runDurations: delta("tasklane_run_duration_seconds_count", { outcome: "succeeded" }),
      startLatencies: delta("tasklane_submit_to_start_seconds_count"),
      queued: valueOf(after, "tasklane_queue_depth"),
    }).toEqual({
      submitted: 1,
      started: 1,
      finishedOk: 1,
      finishedAll: 1,
      succeeded: 1,
      pending: 0,
      running: 0,
      stdoutLines: 2,
      stderrLines: 1,
      stdoutBytes: "one\ntwo\n".length,
      stderrBytes: "err\n".length,
      runDurations: 1,
      startLatencies: 1,
      queued: 0,
    });
    // HTTP requests are counted by route template, never by concrete id.
    expect(valueOf(after, "tasklane_http_requests_total", { route: "/api/v1/tasks/:id/wait", method: "GET", status: "200" })).toBe(1);
    expect(valueOf(after, "tasklane_http_requests_total", { route: "/api/v1/tasks", method: "POST", status: "201" })).toBe(1);
    expect(after.samples.some((s) => Object.values(s.labels).some((v) => v.includes(id)))).toBe(false);
  });

  test("tasklane_log_bytes_total counts the bytes read from the pipes, not the lines kept", async () => {
    for (const spawnOn of ["main", "thread"]) {
      await using a = await startAgent({ args: ["--max-line", "1KiB", "--spawn-on", spawnOn] });
      const before = await scrape(a);
      // A 1 MiB line (kept: 1 KiB + marker), CRLF, two invalid UTF-8 bytes (kept: two U+FFFD), a last line without newline.
      const script = "head -c 1048576 /dev/zero | tr '\\0' a; printf '\\n'; printf 'x\\r\\n'; printf '\\377\\376\\n'; printf y; printf 'e\\r\\n' >&2";
      const { id } = await submitOk(a, bashSpec(script));
      expect((await waitTerminal(a, id)).status.phase).toBe("succeeded");
      const after = await scrape(a);
      const delta = (name: string, stream: string) => valueOf(after, name, { stream }) - valueOf(before, name, { stream });
      expect({
        spawnOn,
        stdoutBytes: delta("tasklane_log_bytes_total", "stdout"),
        stderrBytes: delta("tasklane_log_bytes_total", "stderr"),
        stdoutLines: delta("tasklane_log_lines_total", "stdout"),
      }).toEqual({ spawnOn, stdoutBytes: 1_048_577 + 3 + 3 + 1, stderrBytes: 3, stdoutLines: 4 });
    }
  });

  test("a failing run is counted by its outcome", async () => {
    await using a = await startAgent();
    const before = await scrape(a);
    const { id } = await submitOk(a, commandSpec("false"));
    expect((await waitTerminal(a, id)).status.phase).toBe("failed");
    const after = await scrape(a);
    expect(valueOf(after, "tasklane_runs_finished_total", { outcome: "failed" }) - valueOf(before, "tasklane_runs_finished_total", { outcome: "failed" })).toBe(1);
    expect(valueOf(after, "tasklane_tasks", { phase: "failed" })).toBe(1);
  });

  test("names follow the Prometheus naming rules", async () => {
    await using a = await startAgent();
    const { id } = await submitOk(a, commandSpec("true"));
    await waitTerminal(a, id);
    await a.request("GET", "/api/v1/tasks/tsk_nope");
    const exp = await scrape(a);
    const names = [...exp.types.keys()];
    expect(names.length).toBeGreaterThan(15);
    const problems: string[] = [];
    for (const name of names) {
      const type = exp.types.get(name);
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) problems.push(`${name}: not snake_case`);
      if (!/^(tasklane_|process_|nodejs_)/.test(name)) problems.push(`${name}: not under tasklane_ (or the standard process_/nodejs_)`);
      if (/(^|_)tasklane_.*tasklane_/.test(name) || /^(process|nodejs)_.*_(process|nodejs)_/.test(name)) problems.push(`${name}: double prefix`);
      if (type === "counter" && !name.endsWith("_total")) problems.push(`${name}: counter without _total`);
      if (type !== "counter" && name.endsWith("_total")) problems.push(`${name}: ${type} ending in _total`);
      if (/_(milliseconds|ms|microseconds|kilobytes|megabytes|minutes|hours)(_|$)/.test(name)) problems.push(`${name}: not in base units`);
      if ((type === "histogram" || type === "summary") && /duration|latency|_time/.test(name) && !name.endsWith("_seconds")) problems.push(`${name}: time not in _seconds`);
      if (!exp.help.get(name)) problems.push(`${name}: no HELP`);
    }
    expect(problems).toEqual([]);
    // Labels never carry task ids or slots.
    const labelNames = new Set(exp.samples.flatMap((s) => Object.keys(s.labels)));
    for (const bad of ["id", "task", "task_id", "slot", "path"]) expect(labelNames.has(bad)).toBe(false);
    // The metric list is present.
    for (const name of [
      "tasklane_tasks",
      "tasklane_tasks_running",
      "tasklane_queue_depth",
      "tasklane_tasks_submitted_total",
      "tasklane_runs_started_total",
      "tasklane_runs_finished_total",
      "tasklane_run_duration_seconds",
      "tasklane_submit_to_start_seconds",
      "tasklane_log_lines_total",
      "tasklane_log_bytes_total",
      "tasklane_lagged_events_total",
      "tasklane_stream_subscribers",
      "tasklane_http_requests_total",
      "tasklane_http_request_duration_seconds",
      "tasklane_grpc_requests_total",
      "tasklane_grpc_request_duration_seconds",
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
    ]) {
      expect(exp.types.has(name)).toBe(true);
    }
    // Every sample belongs to a declared family.
    for (const s of exp.samples) expect(exp.types.has(familyOf(exp, s.name))).toBe(true);
  });

  test(
    "cardinality stays bounded: 1000 tasks in 1000 slots add no series",
    async () => {
      await using a = await startAgent({ args: ["--max-concurrent", "16"] });
      let next = 0;
      const runTasks = async (count: number) => {
        const limit = next + count;
        const worker = async () => {
          while (next < limit) {
            const i = next++;
            const { id } = await submitOk(a, commandSpec("echo", [`task ${i}`], { slot: `card-${i}` }));
            await waitTerminal(a, id, 30_000);
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
      };
      const tasklaneSeries = (e: Exposition) => e.samples.filter((s) => s.name.startsWith("tasklane_")).map(seriesKey).sort();

      await runTasks(20);
      await scrape(a); // the first scrape adds the series of GET /metrics itself
      const early = await scrape(a);
      await runTasks(980);
      const late = await scrape(a);

      expect(valueOf(late, "tasklane_tasks", { phase: "succeeded" })).toBe(1000);
      expect(valueOf(late, "tasklane_runs_started_total")).toBe(1000);
      expect(valueOf(late, "tasklane_log_lines_total", { stream: "stdout" })).toBe(1000);
      expect(tasklaneSeries(late)).toEqual(tasklaneSeries(early));
      // Process metrics may gain a few series (e.g. a new GC kind) but never one per task.
      expect(late.samples.length).toBeLessThan(early.samples.length + 20);
      expect(late.samples.length).toBeLessThan(600);
    },
    180_000,
  );

  test("stream subscribers are counted while SSE, WebSocket and gRPC streams are open", async () => {
    await using a = await startAgent();
    const { id } = await submitOk(a, commandSpec("true"));
    await waitTerminal(a, id);
    const subscribers = (e: Exposition, transport: string) => valueOf(e, "tasklane_stream_subscribers", { transport });

    // SSE: an open watch stream counts until the client goes away.
    const ac = new AbortController();
    const res = await fetch(`${a.url}/api/v1/events`, { signal: ac.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read(); // the stream is open (first bytes arrived)
    await scrapeUntil(a, (e) => subscribers(e, "sse") === 1, "one SSE subscriber");
    ac.abort();
    await reader.cancel().catch(() => {});
    await scrapeUntil(a, (e) => subscribers(e, "sse") === 0, "the SSE subscriber gone");

    // A finished log stream (follow=false) ends by itself and is uncounted.
    const logs = await a.request("GET", `/api/v1/tasks/${id}/logs?follow=false`);
    await logs.text();
    await scrapeUntil(a, (e) => subscribers(e, "sse") === 0, "no SSE subscriber after a finished stream");

    // WebSocket watch.
    const ws = new WebSocket(`${a.url.replace("http", "ws")}/ws/tasks`);
    const firstMessage = new Promise<void>((resolve, reject) => {
      ws.onmessage = () => resolve();
      ws.onerror = () => reject(new Error("websocket failed"));
    });
    await firstMessage; // the replay of the finished task arrived: the socket is open and subscribed
    await scrapeUntil(a, (e) => subscribers(e, "websocket") === 1, "one WebSocket subscriber");
    const closed = new Promise<void>((resolve) => (ws.onclose = () => resolve()));
    ws.close();
    await closed;
    const afterWs = await scrapeUntil(a, (e) => subscribers(e, "websocket") === 0, "the WebSocket subscriber gone");
    // The handshake answered 101 on the wire, and is counted so.
    expect(valueOf(afterWs, "tasklane_http_requests_total", { route: "/ws/tasks", method: "GET", status: "101" })).toBe(1);
    // A plain GET (and a POST) of it answers 426, and is counted as that route and status, not as an unknown route.
    expect((await a.request("GET", "/ws/tasks")).status).toBe(426);
    expect((await a.request("POST", "/ws/tasks", "{}")).status).toBe(426);
    const after426 = await scrape(a);
    expect(valueOf(after426, "tasklane_http_requests_total", { route: "/ws/tasks", method: "GET", status: "426" })).toBe(1);
    expect(valueOf(after426, "tasklane_http_requests_total", { route: "/ws/tasks", method: "POST", status: "426" })).toBe(1);
    expect(valueOf(after426, "tasklane_http_requests_total", { route: "unmatched" })).toBe(0);

    // gRPC: a StreamTaskLogs of a held task stays open until the client cancels it.
    const held = await submitOk(a, commandSpec("true", [], { hold: true }));
    const client = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", a.agent.grpcPort);
    try {
      const live = serverStream(client, "StreamTaskLogs", { taskId: held.id });
      const ended = collect(live);
      await scrapeUntil(a, (e) => subscribers(e, "grpc") === 1, "one gRPC subscriber");
      live.cancel();
      expect((await ended).code).toBe(grpcStatus.CANCELLED);
      await scrapeUntil(a, (e) => subscribers(e, "grpc") === 0, "the gRPC subscriber gone");

      // A stream of a terminal task replays and ends with OK.
      expect((await collect(serverStream(client, "StreamTaskLogs", { taskId: id }))).code).toBe(grpcStatus.OK);
      await unary(client, "GetTaskStatus", { taskId: id });
      const e = await scrapeUntil(a, (x) => valueOf(x, "tasklane_grpc_requests_total", { code: "OK", method: "solti.v1.SoltiApi/StreamTaskLogs" }) === 1, "the finished gRPC stream");
      expect(subscribers(e, "grpc")).toBe(0);
      expect(valueOf(e, "tasklane_grpc_requests_total", { method: "solti.v1.SoltiApi/StreamTaskLogs", code: "CANCELLED" })).toBe(1);
      expect(valueOf(e, "tasklane_grpc_requests_total", { method: "solti.v1.SoltiApi/GetTaskStatus", code: "OK" })).toBe(1);
    } finally {
      client.close();
      await a.json("POST", `/api/v1/tasks/${held.id}/cancel`);
    }
  });

  test("gRPC errors are counted by status code", async () => {
    await using a = await startAgent();
    const client = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", a.agent.grpcPort);
    try {
      await expect(unary(client, "ListTaskRuns", { taskId: "tsk_missing" })).rejects.toBeDefined();
    } finally {
      client.close();
    }
    const e = await scrape(a);
    expect(valueOf(e, "tasklane_grpc_requests_total", { method: "solti.v1.SoltiApi/ListTaskRuns", code: "NOT_FOUND" })).toBe(1);
  });

  test("calls refused before any handler runs are counted with the status the client got", async () => {
    await using a = await startAgent();
    const client = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", a.agent.grpcPort);
    const raw = (path: string, bytes: number) =>
      new Promise<number>((resolve) =>
        client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(bytes), (err) => resolve(err?.code ?? grpcStatus.OK)),
      );
    try {
      // Over the 4 MiB receive limit: grpc-js answers RESOURCE_EXHAUSTED without calling the service.
      expect(await raw("/solti.v1.SoltiApi/SubmitTask", 5 * 1024 * 1024)).toBe(grpcStatus.RESOURCE_EXHAUSTED);
      // Unknown methods: UNIMPLEMENTED, under one label value whatever the path (a client cannot grow the label set).
      expect(await raw("/solti.v1.SoltiApi/NoSuchMethod", 0)).toBe(grpcStatus.UNIMPLEMENTED);
      expect(await raw("/x.Y/Z", 0)).toBe(grpcStatus.UNIMPLEMENTED);
    } finally {
      client.close();
    }
    const e = await scrapeUntil(
      a,
      (x) =>
        valueOf(x, "tasklane_grpc_requests_total", { method: "unknown", code: "UNIMPLEMENTED" }) === 2 &&
        valueOf(x, "tasklane_grpc_requests_total", { method: "solti.v1.SoltiApi/SubmitTask", code: "RESOURCE_EXHAUSTED" }) === 1,
      "two unknown-method calls and the oversized submit",
    );
    const methods = new Set(e.samples.filter((s) => s.name === "tasklane_grpc_requests_total").map((s) => s.labels.method));
    expect([...methods].sort()).toEqual(["solti.v1.SoltiApi/SubmitTask", "unknown"]);
  });
});

describe("GET /api/v1/metrics", () => {
  test("summarizes tasks by phase and slot, running, queued and the submit rate", async () => {
    await using a = await startAgent({ args: ["--max-concurrent", "1"] });
    const done = await submitOk(a, commandSpec("true", [], { slot: "done" }));
    await waitTerminal(a, done.id);
    const held = await submitOk(a, commandSpec("true", [], { slot: "later", hold: true }));
    const r = await a.json("GET", "/api/v1/metrics");
    expect(r.status).toBe(200);
    expect(Value.Check(MetricsSummarySchema, r.body)).toBe(true);
    const { timestamp, submittedPerSecond, ...rest } = r.body;
    expect(typeof timestamp).toBe("number");
    expect(submittedPerSecond).toBeCloseTo(2 / 60, 5);
    expect(rest).toEqual({
      tasksByPhase: Object.fromEntries(PHASES.map((p) => [p, p === "succeeded" ? 1 : p === "pending" ? 1 : 0])),
      activeBySlot: { later: 1 },
      running: 0,
      queued: 0,
      backoff: 0,
      held: 1,
      submittedTotal: 2,
    });
    await a.json("POST", `/api/v1/tasks/${held.id}/cancel`);
  });
});
