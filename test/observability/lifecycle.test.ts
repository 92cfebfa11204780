/**
 * Structured logs of task transitions, /healthz and /readyz, and readiness
 * during shutdown: /readyz and gRPC health flip to "not ready" the moment
 * stop() begins, while the work is still being stopped.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/observability/logger.ts";
import * as grpc from "@grpc/grpc-js";
import { collect, protoClient, serverStream, unary } from "../grpc/proto-client.ts";
import { bashSpec, commandSpec, startAgent } from "../helpers/start-agent.ts";
import { getTask, makeFifo, release, submitOk, waitForLine, waitTerminal } from "../helpers/task-control.ts";
import { collectLogger } from "./collect-logger.ts";

describe("structured logs", () => {
  test("one JSON line per task transition with id, slot, attempt, phase and exit code", async () => {
    const { logger, lines } = collectLogger();
    await using a = await startAgent({ logger });
    const { id } = await submitOk(a, commandSpec("sh", ["-c", "exit 3"], { slot: "logged" }));
    expect((await waitTerminal(a, id)).status.phase).toBe("failed");
    const transitions = lines.filter((l) => l.msg === "task transition" && l.taskId === id).map(({ ts, ...rest }) => rest);
    expect(transitions).toEqual([
      { level: "info", msg: "task transition", taskId: id, slot: "logged", attempt: 0, phase: "pending" },
      { level: "info", msg: "task transition", taskId: id, slot: "logged", attempt: 1, from: "pending", phase: "running" },
      { level: "info", msg: "task transition", taskId: id, slot: "logged", attempt: 1, from: "running", phase: "failed", exitCode: 3, error: expect.any(String) },
    ]);
    expect(lines.some((l) => l.msg === "tasklane ready")).toBe(true);
  });

  test("text format and level filtering", () => {
    const out: string[] = [];
    const logger = createLogger({ level: "warn", format: "text", write: (l) => out.push(l), clock: () => 0 });
    logger.info("hidden");
    logger.warn("task transition", { taskId: "tsk_1", phase: "failed", error: "exit status 3", n: 1 });
    logger.error("internal error", { err: new Error("boom") });
    expect(out[0]).toBe('1970-01-01T00:00:00.000Z WARN  task transition taskId=tsk_1 phase=failed error="exit status 3" n=1\n');
    expect(out[1]).toStartWith('1970-01-01T00:00:00.000Z ERROR internal error err="Error: boom');
    expect(out).toHaveLength(2);
    expect(logger.enabled("info")).toBe(false);
    expect(logger.enabled("error")).toBe(true);
  });
});

describe("health and readiness", () => {
  test("/healthz and /readyz answer with meaningful bodies", async () => {
    await using a = await startAgent();
    expect(await a.json("GET", "/healthz")).toEqual({ status: 200, body: { status: "alive" } });
    expect(await a.json("GET", "/readyz")).toEqual({
      status: 200,
      body: { status: "ready", checks: { storeOpen: true, storeWritable: true, httpListening: true, grpcListening: true, accepting: true } },
    });
  });

  test("readiness flips to 503 (and gRPC health to NOT_SERVING) before running work is stopped", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tasklane-ready-"));
    const fifo = makeFifo(dir, "term");
    const a = await startAgent();
    const health = protoClient("grpc/health/v1/health.proto", "grpc.health.v1.Health", a.agent.grpcPort);
    let released = false;
    try {
      expect(await unary(health, "Check", { service: "" })).toEqual({ status: "SERVING" });
      // A task that, on SIGTERM, holds on until the test releases it: shutdown takes as long as the test wants.
      const script = `trap 'echo got-term; read -r _ < "${fifo}"; exit 0' TERM\necho ready\nsleep 600 & wait $!\n`;
      const { id } = await submitOk(a, bashSpec(script, { killGraceMs: 60_000 }));
      await waitForLine(a, id, (l) => l === "ready");
      // A Watch-based checker (grpc-js client-side health checking, a mesh) hears of the stop too.
      const watch = serverStream<{ status: string }>(health, "Watch", { service: "" });
      const watched = collect(watch);
      const seen: string[] = [];
      const notServing = new Promise<void>((resolve) =>
        watch.on("data", (m: { status: string }) => {
          seen.push(m.status);
          if (m.status === "NOT_SERVING") resolve();
        }),
      );
      await new Promise((r) => watch.once("data", r));

      const stopped = a.agent.stop();
      expect(a.agent.ready).toBe(false);
      const ready = await a.json("GET", "/readyz");
      expect(ready).toEqual({
        status: 503,
        body: { status: "not ready", checks: { storeOpen: true, storeWritable: true, httpListening: true, grpcListening: true, accepting: false } },
      });
      expect((await a.json("GET", "/healthz")).status).toBe(200);
      expect(await unary(health, "Check", { service: "" })).toEqual({ status: "NOT_SERVING" });
      expect(await unary(health, "Check", { service: "solti.v1.SoltiApi" })).toEqual({ status: "NOT_SERVING" });
      // The work has not stopped yet: the task is still running (it got TERM and is waiting for us).
      expect((await getTask(a, id)).status.phase).toBe("running");
      // The watcher got NOT_SERVING, and its stream stays open through the drain (a watch that ended instead fails here).
      await Promise.race([notServing, watched]);
      expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
      let ended = false;
      void watched.then(() => (ended = true));
      await unary(health, "List", {});
      expect(ended).toBe(false);

      released = true;
      await release(fifo);
      await stopped;
      // It ends when the server closes.
      expect(await watched).toEqual({ code: grpc.status.UNAVAILABLE, details: "server is shutting down", messages: [{ status: "SERVING" }, { status: "NOT_SERVING" }] });
    } finally {
      // A failed check above must not leave the stop waiting out the task's 60 s grace.
      if (!released) await release(fifo).catch(() => {});
      health.close();
      await a[Symbol.asyncDispose]();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
