import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { collect, protoClient, serverStream, unary } from "../grpc/proto-client.ts";
import { processGone } from "../helpers/process.ts";
import { binaryPath, startBinary } from "./binary.ts";

const pidAlive = (pid: number) => !processGone(pid);

describe("compiled binary", () => {
  test("--version and --help", async () => {
    const bin = await binaryPath();
    const v = Bun.spawnSync([bin, "--version"]);
    expect(v.exitCode).toBe(0);
    expect(v.stdout.toString()).toMatch(/^tasklane \d+\.\d+\.\d+/);
    const h = Bun.spawnSync([bin, "serve", "--help"]);
    expect(h.exitCode).toBe(0);
    expect(h.stdout.toString()).toContain("--http-addr");
  });

  test("a bad flag is a one-line error naming it, exit 2", async () => {
    const bin = await binaryPath();
    const r = Bun.spawnSync([bin, "serve", "--max-concurrent", "zero"]);
    expect(r.exitCode).toBe(2);
    const err = r.stderr.toString().trim();
    expect(err.split("\n")).toHaveLength(1);
    expect(err).toContain("--max-concurrent");
    expect(err).toContain('"zero"');
  });

  test("serves a task end to end and shuts down on SIGTERM leaving no child", async () => {
    // A stray .env and bunfig.toml in the working directory must be ignored.
    const cwd = mkdtempSync(join(tmpdir(), "tasklane-cwd-"));
    writeFileSync(join(cwd, ".env"), "TASKLANE_HTTP_ADDR=not-an-address\nTASKLANE_MAX_CONCURRENT=oops\n");
    writeFileSync(join(cwd, "bunfig.toml"), "this is [not toml\n");
    const agent = await startBinary({ cwd });
    try {
      const submit = await fetch(`${agent.url}/api/v1/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          spec: {
            slot: "e2e",
            kind: { subprocess: { mode: { command: { command: "echo", args: ["hello world"] } }, env: [], failOnNonZero: true } },
            timeout: 30000,
            restart: { type: "never" },
            backoff: { jitter: "full", firstMs: 1000, maxMs: 10000, factor: 2.0 },
            admission: "dropIfRunning",
          },
        }),
      });
      expect(submit.status).toBe(201);
      const { task_id, admission } = (await submit.json()) as { task_id: string; admission: string };
      expect(task_id).toMatch(/^tsk_[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(admission).toBe("started");
      const waited = (await (await fetch(`${agent.url}/api/v1/tasks/${task_id}/wait?timeoutMs=20000`)).json()) as any;
      expect(waited.task.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
      const logs = await (await fetch(`${agent.url}/api/v1/tasks/${task_id}/logs?follow=false`)).text();
      expect(logs).toContain('"line":"hello world"');

      // A long-running task whose child ignores SIGTERM: shutdown must still leave nothing behind.
      const script = "trap '' TERM; sleep 300 & echo child=$!; wait";
      const long = await fetch(`${agent.url}/api/v1/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          spec: { slot: "long", kind: { subprocess: { mode: { script: { runtime: "bash", body: btoa(script) } } } }, killGraceMs: 200 },
        }),
      });
      const longId = ((await long.json()) as { task_id: string }).task_id;
      const res = await fetch(`${agent.url}/api/v1/tasks/${longId}/logs`);
      const reader = res.body!.getReader();
      let text = "";
      let childPid = 0;
      while (!childPid) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
        const m = /child=(\d+)/.exec(text);
        if (m) childPid = Number(m[1]);
      }
      void reader.cancel();
      expect(childPid).toBeGreaterThan(0);
      expect(pidAlive(childPid)).toBe(true);
      expect(await agent.stop("SIGTERM")).toBe(0);
      expect(pidAlive(childPid)).toBe(false);
    } finally {
      await agent[Symbol.asyncDispose]();
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  test("SIGTERM answers what is open once the work has stopped: the tasks' last lines on SSE and gRPC, a gRPC log stream ends OK for a finished task and UNAVAILABLE for one that resumes later, watches end UNAVAILABLE, waits answer the final state", async () => {
    // Every line of the stop's burst is retained, so a reader that keeps up must get each one.
    const agent = await startBinary({ args: ["--log-retain", "20000"] });
    const port = Number(agent.grpcAddr.split(":").pop());
    const solti = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", port);
    const ext = protoClient("tasklane/v1/agent.proto", "tasklane.v1.AgentService", port);
    try {
      const post = (query: string, spec: unknown) =>
        fetch(`${agent.url}/api/v1/tasks${query}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ spec }) });
      // Each prints its last lines when stopped — a burst of 5 000, then bye — as the agent's TERM reaches it during the shutdown.
      const BURST = 5000;
      const trapper = (slot: string, restart: unknown) => ({
        slot,
        restart,
        kind: {
          subprocess: {
            mode: { script: { runtime: "bash", body: btoa(`trap 'for ((i = 1; i <= ${BURST}; i++)); do echo burst-$i; done; echo bye-${slot}; exit 3' TERM; echo up-${slot}; sleep 60 & wait`) } },
          },
        },
      });
      const idOf = async (r: Promise<Response>) => ((await (await r).json()) as { task_id: string }).task_id;
      const done = await idOf(post("", trapper("shut-done", { type: "never" })));
      const later = await idOf(post("", trapper("shut-later", { type: "onFailure" })));

      const logsDone = serverStream(solti, "StreamTaskLogs", { taskId: done });
      const logsLater = serverStream(solti, "StreamTaskLogs", { taskId: later });
      const watch = serverStream(ext, "WatchTasks", {});
      const streams = Promise.all([collect(logsDone), collect(logsLater), collect(watch)]);
      const lineOf = (m: unknown) => (m as { chunk?: { line?: Buffer } }).chunk?.line?.toString() ?? "";
      const sawLine = (stream: grpc.ClientReadableStream<unknown>, text: string) =>
        new Promise<void>((resolve) => stream.on("data", (m: unknown) => lineOf(m) === text && resolve()));
      // Both tasks are up (their trap is set) once their first line arrived; the watch is in place with its first event.
      await Promise.all([sawLine(logsDone, "up-shut-done"), sawLine(logsLater, "up-shut-later"), new Promise((r) => watch.once("data", r))]);
      const grpcWait = unary<{ task: { status: { phase: string } } }>(ext, "WaitTask", { taskId: done, timeoutMs: "600000" });
      await unary(ext, "GetInfo", {}); // after the wait on the same connection: the wait is in place
      const sse = await fetch(`${agent.url}/api/v1/tasks/${done}/logs`);
      const sseText = new Response(sse.body).text();
      // A REST submit-and-wait: its wait is in place as soon as its task is listed.
      const restRun = post("?wait=true&timeoutMs=600000", trapper("shut-wait", { type: "never" }));
      while (((await (await fetch(`${agent.url}/api/v1/tasks?slot=shut-wait`)).json()) as { total: number }).total === 0) await Bun.sleep(1);

      expect(await agent.stop("SIGTERM")).toBe(0);
      const [d, l, w] = await streams;
      // The whole burst and the end of the run, though the stop closes the gRPC server right after.
      const doneLines = d.messages.map(lineOf);
      expect(doneLines.filter((l) => l.startsWith("burst-"))).toHaveLength(BURST);
      expect(doneLines).toContain("bye-shut-done");
      expect(d.messages.at(-1)).toMatchObject({ kind: "runFinished" });
      expect([d.code, d.details]).toEqual([grpc.status.OK, "OK"]);
      expect(l.messages.map(lineOf)).toContain("bye-shut-later");
      expect([l.code, l.details]).toEqual([grpc.status.UNAVAILABLE, "server is shutting down"]);
      expect([w.code, w.details]).toEqual([grpc.status.UNAVAILABLE, "server is shutting down"]);
      // The watch saw where the stop left each task.
      const phases = (id: string) => w.messages.filter((m) => JSON.stringify(m).includes(id)).map((m) => (m as { task?: { status?: { phase?: string } } }).task?.status?.phase);
      expect(phases(done).at(-1)).toBe("TASK_STATUS_FAILED");
      expect(phases(later).at(-1)).toBe("TASK_STATUS_PENDING");
      expect((await grpcWait).task.status.phase).toBe("TASK_STATUS_FAILED");
      const run = await restRun;
      expect(run.status).toBe(200);
      expect(((await run.json()) as { task: { status: { phase: string } } }).task.status.phase).toMatch(/^(pending|failed)$/); // failed: "interrupted: agent shut down"; pending if it never started
      // The SSE stream has the same last line and ends (EOF), not cut by a reset.
      expect(await sseText).toContain("bye-shut-done");
    } finally {
      solti.close();
      ext.close();
      await agent[Symbol.asyncDispose]();
    }
  });
});
