/** The compiled binary over gRPC (a .proto-only client) and as its own CLI client. */
import { describe, expect, test } from "bun:test";
import { collect, protoClient, serverStream, unary } from "../grpc/proto-client.ts";
import { binaryPath, startBinary } from "./binary.ts";

const portOf = (addr: string) => Number(addr.slice(addr.lastIndexOf(":") + 1));

describe("compiled binary over gRPC", () => {
  test("health, submit, status, logs, runs, list, delete", async () => {
    await using agent = await startBinary();
    const port = portOf(agent.grpcAddr);
    const health = protoClient("grpc/health/v1/health.proto", "grpc.health.v1.Health", port);
    expect(await unary(health, "Check", { service: "" })).toEqual({ status: "SERVING" });
    const api = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", port);
    const { taskId } = await unary<{ taskId: string }>(api, "SubmitTask", {
      spec: {
        slot: "grpc-e2e",
        kind: { subprocess: { command: { command: "sh", args: ["-c", "echo one; echo two >&2"] }, failOnNonZero: true } },
        timeoutMs: "30000",
        restart: "RESTART_STRATEGY_NEVER",
        backoff: { jitter: "JITTER_STRATEGY_FULL", firstMs: "1000", maxMs: "10000", factor: 2 },
        admission: "ADMISSION_STRATEGY_QUEUE",
      },
    });
    expect(taskId).toMatch(/^tsk_/);
    // The log stream ends once the task is terminal and drained.
    const logs = await collect<any>(serverStream(api, "StreamTaskLogs", { taskId }));
    expect(logs.code).toBe(0);
    expect(logs.messages.map((m) => m.kind)).toEqual(["runStarted", "chunk", "chunk", "runFinished"]);
    const lines = logs.messages.filter((m) => m.kind === "chunk").map((m) => [m.chunk.stream, Buffer.from(m.chunk.line).toString()]);
    expect(lines.sort()).toEqual([
      ["OUTPUT_STREAM_KIND_STDERR", "two"],
      ["OUTPUT_STREAM_KIND_STDOUT", "one"],
    ]);
    const status = await unary<any>(api, "GetTaskStatus", { taskId });
    expect(status.task.status).toMatchObject({ phase: "TASK_STATUS_SUCCEEDED", attempt: 1, exitCode: 0 });
    const runs = await unary<any>(api, "ListTaskRuns", { taskId });
    expect(runs.runs).toHaveLength(1);
    expect(runs.runs[0]).toMatchObject({ attempt: 1, status: "TASK_STATUS_SUCCEEDED", exitCode: 0 });
    const list = await unary<any>(api, "ListTasks", { slot: "grpc-e2e" });
    expect(list.total).toBe(1);
    await unary(api, "DeleteTask", { taskId });
    await unary(api, "DeleteTask", { taskId });
    expect(await unary(api, "GetTaskStatus", { taskId })).toEqual({});
    api.close();
    health.close();
  });
});

describe("compiled binary as its own client", () => {
  test("run streams output in order and exits with the task's exit code", async () => {
    await using agent = await startBinary();
    const bin = await binaryPath();
    const script = "for i in 1 2 3; do echo out-$i; done; echo err-1 >&2; exit 3";
    const p = Bun.spawn([bin, "run", "--server", agent.url, "--", "sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
    const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
    expect({ code, out }).toEqual({ code: 3, out: "out-1\nout-2\nout-3\n" });
    expect(err).toContain("err-1");
    const ok = Bun.spawnSync([bin, "run", "--server", agent.url, "--", "true"]);
    expect(ok.exitCode).toBe(0);
    const ls = Bun.spawnSync([bin, "ls", "--server", agent.url, "--json"]);
    expect(ls.exitCode).toBe(0);
    expect(JSON.parse(ls.stdout.toString()).tasks).toHaveLength(2);
  });
});
