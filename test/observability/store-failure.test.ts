/**
 * A store that fails for good (here: an fsync of the write-ahead log that
 * fails, through the store's `syncWal` seam — a real failure path of the
 * store, which is sticky from then on) takes the agent out of readiness:
 * /readyz 503 with `storeWritable: false`, gRPC health NOT_SERVING (Check and
 * Watch). New work is refused with 503 before any task is created, no new run
 * starts, a submit answered 500 is not counted as accepted and its task does
 * not go on running.
 */
import { describe, expect, test } from "bun:test";
import { fsync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { SUBMIT_NOT_DURABLE } from "../../src/tasks/task-service.ts";
import { protoClient, serverStream, unary } from "../grpc/proto-client.ts";
import { commandSpec, startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { blockSpec, getRuns, getTask, makeFifo, release, submit, submitOk, tempDir, waitTerminal } from "../helpers/task-control.ts";
import { collectLogger, type LogLine } from "./collect-logger.ts";
import { parseExposition, valueOf } from "./prom-text.ts";

const UNAVAILABLE = "the agent's store has failed (see the agent's log): no work is accepted until the agent is restarted";

/** A real agent on a SQLite data dir whose WAL fsyncs fail once `failing` is set. */
async function startAgentWithFailingSync(args: string[] = [], failing = false) {
  const state = { failing };
  const syncWal = (fd: number, done: (err: Error | null) => void) => {
    if (state.failing) setImmediate(() => done(Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" })));
    else fsync(fd, done);
  };
  const { logger, lines, waitFor } = collectLogger();
  const started = await startAgent({ persistent: true, args, logger, storeOptions: { syncWal } });
  // Its stop rejects with the store's failure (tested below): disposal only cleans up.
  const a: TestAgent = { ...started, [Symbol.asyncDispose]: () => Promise.resolve(started[Symbol.asyncDispose]()).catch(() => {}) };
  const health = protoClient("grpc/health/v1/health.proto", "grpc.health.v1.Health", started.agent.grpcPort);
  return { a, state, lines, waitFor, health };
}

async function scrape(a: TestAgent) {
  return parseExposition(await (await a.request("GET", "/metrics")).text());
}

describe("a store that fails for good", () => {
  test("not ready (REST and gRPC), new work refused with 503, no new run, only durable submits counted", async () => {
    using dir = tempDir();
    const blocker = makeFifo(dir.path, "blocker");
    const { a, state, lines, waitFor, health } = await startAgentWithFailingSync(["--max-concurrent", "1"]);
    await using _a = a;
    try {
      expect(await a.json("GET", "/readyz")).toEqual({
        status: 200,
        body: { status: "ready", checks: { storeOpen: true, storeWritable: true, httpListening: true, grpcListening: true, accepting: true } },
      });
      const watch = serverStream<{ status: string }>(health, "Watch", { service: "" });
      const seen: string[] = [];
      const notServing = new Promise<void>((resolve) =>
        watch.on("data", (m: { status: string }) => {
          seen.push(m.status);
          if (m.status === "NOT_SERVING") resolve();
        }),
      );
      watch.on("error", () => {});

      // Before the failure: one task runs (held on a fifo), one waits for capacity, one is held.
      const x = (await submitOk(a, blockSpec(blocker, "x"))).id;
      const q = (await submitOk(a, commandSpec("true"))).id;
      const held = (await submitOk(a, commandSpec("true", [], { hold: true }))).id;
      expect((await getTask(a, q)).status).toEqual({ phase: "pending", attempt: 0 });

      state.failing = true;
      const failed = await submit(a, commandSpec("true"));
      expect(failed.status).toBe(500);
      expect(failed.body.error).toBe("Internal");
      await waitFor((l: LogLine) => l.msg.startsWith("store failed"));

      // Not ready, on both ports, and told to the health watcher.
      expect(a.agent.ready).toBe(false);
      expect(await a.json("GET", "/readyz")).toEqual({
        status: 503,
        body: { status: "not ready", checks: { storeOpen: true, storeWritable: false, httpListening: true, grpcListening: true, accepting: true } },
      });
      expect(await unary(health, "Check", { service: "" })).toEqual({ status: "NOT_SERVING" });
      expect(await unary(health, "Check", { service: "solti.v1.SoltiApi" })).toEqual({ status: "NOT_SERVING" });
      await notServing;
      expect(seen).toEqual(["SERVING", "NOT_SERVING"]);

      // New work is refused before a task exists; a held task is not released.
      const listed = (await a.json("GET", "/api/v1/tasks")).body.total;
      expect(await submit(a, commandSpec("true"))).toEqual({ status: 503, body: { error: "Unavailable", message: UNAVAILABLE } });
      expect(await a.json("POST", `/api/v1/tasks/${held}/start`)).toEqual({ status: 503, body: { error: "Unavailable", message: UNAVAILABLE } });
      expect((await a.json("GET", "/api/v1/tasks")).body.total).toBe(listed);
      const solti = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", a.agent.grpcPort);
      try {
        const spec = { slot: "g", kind: { subprocess: { command: { command: "true" } } }, timeoutMs: "1000", restart: "RESTART_STRATEGY_NEVER", admission: "ADMISSION_STRATEGY_QUEUE" };
        const err = await unary(solti, "SubmitTask", { spec }).then(
          () => undefined,
          (e: grpc.ServiceError) => ({ code: e.code, details: e.details }),
        );
        expect(err).toEqual({ code: grpc.status.UNAVAILABLE, details: UNAVAILABLE });
      } finally {
        solti.close();
      }

      // The task whose submit answered 500 never ran; the one queued before the failure does not start either.
      const failedTask = (await a.json("GET", "/api/v1/tasks?order=desc&limit=1")).body.tasks[0];
      expect(failedTask.metadata.id).not.toBe(held);
      expect((await waitTerminal(a, failedTask.metadata.id, 4000)).status).toEqual({ phase: "canceled", attempt: 0, error: SUBMIT_NOT_DURABLE });
      expect(await getRuns(a, failedTask.metadata.id)).toEqual([]);
      await release(blocker);
      expect((await waitTerminal(a, x)).status.phase).toBe("succeeded");
      // The slot and the capacity are free now: a working store would have started q in that same step.
      expect((await getTask(a, q)).status).toEqual({ phase: "pending", attempt: 0 });
      // Nor is a terminal task run again.
      expect(await a.json("POST", `/api/v1/tasks/${x}/restart`)).toEqual({ status: 503, body: { error: "Unavailable", message: UNAVAILABLE } });

      // Counted: the three submits answered 201, not the one answered 500.
      const exp = await scrape(a);
      expect(valueOf(exp, "tasklane_tasks_submitted_total")).toBe(3);
      expect((await a.json("GET", "/api/v1/metrics")).body.submittedTotal).toBe(3);
      expect(valueOf(exp, "tasklane_http_requests_total", { route: "/api/v1/tasks", method: "POST", status: "500" })).toBe(1);

      // The failure is logged once, at error level, with its cause.
      const failures = lines.filter((l) => l.msg.startsWith("store failed"));
      expect(failures).toHaveLength(1);
      expect(failures[0]!.level).toBe("error");
      expect(String(failures[0]!.err)).toContain("fsync of the write-ahead log failed");
      // A stop still closes everything, then reports the failure.
      await expect(a.agent.stop()).rejects.toThrow("fsync of the write-ahead log failed");
    } finally {
      health.close();
    }
  });

  test("a store that cannot take the start's own writes: startupWrites rejects (the process then exits 1), not ready", async () => {
    const ok = await startAgentWithFailingSync();
    await using _ok = ok.a;
    ok.health.close();
    await ok.a.agent.startupWrites(); // a working store: settles

    const { a, health } = await startAgentWithFailingSync([], true);
    await using _a = a;
    health.close();
    await expect(a.agent.startupWrites()).rejects.toThrow("fsync of the write-ahead log failed");
    expect(a.agent.ready).toBe(false);
  });

  test("the task of a submit answered 500 does not go on running", async () => {
    const { a, state, health } = await startAgentWithFailingSync();
    await using _a = a;
    health.close();
    // The agent's start-up commit is made durable in the background: a 201 waits for everything committed
    // so far, so the failure below hits the submit's own commit, not that one.
    await submitOk(a, commandSpec("true", [], { hold: true }));
    state.failing = true;
    const failed = await submit(a, commandSpec("sleep", ["600"], { slot: "long" }));
    expect(failed.status).toBe(500);
    const task = (await a.json("GET", "/api/v1/tasks?slot=long")).body.tasks[0];
    // Canceled (its process group stopped) instead of running for ten minutes; a retry elsewhere is the only run.
    expect((await waitTerminal(a, task.metadata.id, 4000)).status).toMatchObject({ phase: "canceled", error: SUBMIT_NOT_DURABLE });
  });
});
