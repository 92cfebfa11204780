/**
 * The gRPC transport over the real agent (createAgent: store, supervisor,
 * runner, log hub), with clients built only from the .proto files.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ListTasksRequestSchema } from "../../src/gen/solti/v1/api_pb.ts";
import { WatchTasksRequestSchema } from "../../src/gen/tasklane/v1/agent_pb.ts";
import { startAgent } from "../helpers/start-agent.ts";
import { collect, failure, protoClient, rawCall, serverStream, unary } from "./proto-client.ts";

function clients(grpcAddr: string) {
  const port = Number(grpcAddr.split(":").at(-1));
  const solti = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", port);
  const agent = protoClient("tasklane/v1/agent.proto", "tasklane.v1.AgentService", port);
  const health = protoClient("grpc/health/v1/health.proto", "grpc.health.v1.Health", port);
  return {
    solti,
    agent,
    health,
    [Symbol.dispose]() {
      for (const c of [solti, agent, health]) c.close();
    },
  };
}

const bash = (script: string, slot = `s-${crypto.randomUUID().slice(0, 8)}`) => ({
  slot,
  kind: {
    subprocess: {
      script: { wellKnown: "SCRIPT_RUNTIME_BASH", body: Buffer.from(script).toString("base64") },
      failOnNonZero: true,
    },
  },
  timeoutMs: "30000",
  restart: "RESTART_STRATEGY_NEVER",
  admission: "ADMISSION_STRATEGY_QUEUE",
});

type Task = { metadata: { id: string }; spec: { slot: string }; status: { phase: string; exitCode?: number } };

describe("gRPC over the real agent", () => {
  test("submit, wait, status, runs, logs, list and delete", async () => {
    await using a = await startAgent();
    using c = clients(a.grpcAddr);
    expect(await unary(c.health, "Check", { service: "solti.v1.SoltiApi" })).toEqual({ status: "SERVING" });

    const spec = bash("echo hello; echo oops >&2; exit 3");
    const { taskId } = await unary<{ taskId: string }>(c.solti, "SubmitTask", { spec });
    expect(taskId).toMatch(/^tsk_[0-9A-HJKMNP-TV-Z]{26}$/);
    const waited = await unary<{ task: Task }>(c.agent, "WaitTask", { taskId, timeoutMs: "20000" });
    expect(waited.task.status).toMatchObject({ phase: "TASK_STATUS_FAILED", exitCode: 3 });

    const status = await unary<{ task: Task }>(c.solti, "GetTaskStatus", { taskId });
    expect(status.task).toEqual(waited.task);

    const runs = await unary<{ runs: { attempt: number; status: string; exitCode?: number }[] }>(c.solti, "ListTaskRuns", { taskId });
    expect(runs.runs.map((r) => [r.attempt, r.status, r.exitCode])).toEqual([[1, "TASK_STATUS_FAILED", 3]]);

    const logs = await collect<{ kind: string; chunk?: { stream: string; line: Buffer } }>(serverStream(c.solti, "StreamTaskLogs", { taskId }));
    expect(logs.code).toBe(grpc.status.OK);
    expect(logs.messages.map((m) => (m.chunk ? `${m.chunk.stream} ${m.chunk.line}` : m.kind))).toEqual([
      "runStarted",
      ...(logs.messages[1]?.chunk?.stream === "OUTPUT_STREAM_KIND_STDOUT"
        ? ["OUTPUT_STREAM_KIND_STDOUT hello", "OUTPUT_STREAM_KIND_STDERR oops"]
        : ["OUTPUT_STREAM_KIND_STDERR oops", "OUTPUT_STREAM_KIND_STDOUT hello"]),
      "runFinished",
    ]);

    const list = await unary<{ tasks: Task[]; total: number }>(c.solti, "ListTasks", { slot: spec.slot });
    expect([list.total, list.tasks.map((t) => t.metadata.id)]).toEqual([1, [taskId]]);

    // The same task over REST: one domain, two transports.
    const rest = await a.json("GET", `/api/v1/tasks/${taskId}`);
    expect(rest.body.task.status).toMatchObject({ phase: "failed", exitCode: 3 });

    expect(await unary(c.solti, "DeleteTask", { taskId })).toEqual({});
    expect(await unary(c.solti, "DeleteTask", { taskId })).toEqual({});
    expect(await unary(c.solti, "GetTaskStatus", { taskId })).toEqual({});
    expect(await failure(unary(c.solti, "ListTaskRuns", { taskId }))).toEqual({ code: grpc.status.NOT_FOUND, details: `task ${taskId} not found` });
  });

  test("a line at the --max-line maximum (1MiB), every byte invalid UTF-8, streams in one message; the events after it too", async () => {
    await using a = await startAgent({ args: ["--max-line", "1MiB", "--log-retain-bytes", "16MiB"] });
    using c = clients(a.grpcAddr);
    // 2 MiB of 0xFF (cut at 1 MiB, each byte then a 3-byte U+FFFD), then a short line.
    const { taskId } = await unary<{ taskId: string }>(c.solti, "SubmitTask", { spec: bash("head -c 2097152 /dev/zero | tr '\\0' '\\377'; echo; echo after") });
    const logs = await collect<{ kind: string; chunk?: { line: Buffer } }>(serverStream(c.solti, "StreamTaskLogs", { taskId }));
    expect(logs.code).toBe(grpc.status.OK);
    const cut = logs.messages[1]?.chunk?.line.toString("utf8") ?? "";
    expect(cut.length).toBeGreaterThan(1 << 20);
    expect(cut.startsWith("\uFFFD".repeat(1000))).toBe(true);
    expect(cut).toEndWith("…[truncated 1048576 bytes]");
    expect(logs.messages.map((m) => (m.chunk ? (m === logs.messages[1] ? "cut" : String(m.chunk.line)) : m.kind))).toEqual(["runStarted", "cut", "after", "runFinished"]);
  });

  test("validation messages are the REST ones", async () => {
    await using a = await startAgent();
    using c = clients(a.grpcAddr);
    const spec = { ...bash("true"), slot: "bad slot" };
    const viaGrpc = await failure(unary(c.solti, "SubmitTask", { spec }));
    const viaRest = await a.json("POST", "/api/v1/tasks", { spec });
    expect(viaGrpc).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: viaRest.body.message });
    expect(viaRest.status).toBe(400);
  });

  test("list and watch filters that match nothing or mean nothing are INVALID_ARGUMENT, as on REST", async () => {
    await using a = await startAgent();
    // Encoded with protobuf-es: an empty proto3 `optional` is present on the wire, unlike with proto-loader's clients.
    const cases: [string, Uint8Array, string][] = [
      ["/solti.v1.SoltiApi/ListTasks", toBinary(ListTasksRequestSchema, create(ListTasksRequestSchema, { slot: "" })), "slot: must not be empty (leave the parameter out instead)"],
      ["/solti.v1.SoltiApi/ListTasks", toBinary(ListTasksRequestSchema, create(ListTasksRequestSchema, { owner: "" })), "owner: must not be empty (leave the parameter out instead)"],
      ["/solti.v1.SoltiApi/ListTasks", toBinary(ListTasksRequestSchema, create(ListTasksRequestSchema, { labels: { "": "x" } })), "labels: a key must not be empty"],
      ["/solti.v1.SoltiApi/ListTasks", toBinary(ListTasksRequestSchema, create(ListTasksRequestSchema, { createdAfter: -5n })), `createdAfter: must be an integer 0..${Number.MAX_SAFE_INTEGER}, got -5`],
      ["/solti.v1.SoltiApi/ListTasks", toBinary(ListTasksRequestSchema, create(ListTasksRequestSchema, { createdBefore: -1n })), `createdBefore: must be an integer 0..${Number.MAX_SAFE_INTEGER}, got -1`],
      ["/tasklane.v1.AgentService/WatchTasks", toBinary(WatchTasksRequestSchema, create(WatchTasksRequestSchema, { slot: "" })), "slot: must not be empty (leave the parameter out instead)"],
      ["/tasklane.v1.AgentService/WatchTasks", toBinary(WatchTasksRequestSchema, create(WatchTasksRequestSchema, { labels: { "": "x" } })), "labels: a key must not be empty"],
    ];
    for (const [path, bytes, details] of cases) {
      expect({ path, ...(await rawCall(a.grpcAddr, path, bytes)) }).toEqual({ path, code: grpc.status.INVALID_ARGUMENT, details });
    }
    // REST says the same of the list's empty slot (its own parser, first).
    expect((await a.json("GET", "/api/v1/tasks?slot=")).status).toBe(400);
  });

  test("a log subscriber that stops reading: other calls are answered meanwhile, and on resume the count is exact", async () => {
    await using a = await startAgent();
    using c = clients(a.grpcAddr);
    const port = Number(a.grpcAddr.split(":").at(-1));
    // Its own connection: a stalled stream must not hold up the calls on the other one.
    const reader = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", port, { "grpc.use_local_subchannel_pool": 1 });
    const gateDir = mkdtempSync(join(tmpdir(), "tasklane-gate-"));
    try {
      const lines = 200_000;
      const line = "0123456789".repeat(10).slice(0, 99);
      // The task prints only once the subscriber is attached and paused (a subscription that starts
      // late begins at the oldest retained event, which would make the count below meaningless).
      const gate = join(gateDir, "gate.fifo");
      expect(Bun.spawnSync(["mkfifo", gate]).exitCode).toBe(0);
      const { taskId } = await unary<{ taskId: string }>(c.solti, "SubmitTask", { spec: bash(`read -r _ < ${gate}; yes ${line} | head -n ${lines}`) });
      const call = serverStream<{ kind: string; lagged?: { skipped: string | number } }>(reader, "StreamTaskLogs", { taskId });
      const count = { chunks: 0, markers: 0, skipped: 0, lagged: 0 };
      const started = Promise.withResolvers<void>();
      call.on("data", (m) => {
        if (m.kind === "chunk") count.chunks++;
        else if (m.kind === "lagged") {
          count.lagged++;
          count.skipped += Number(m.lagged?.skipped);
        } else count.markers++;
        started.resolve();
      });
      await started.promise; // runStarted: the subscription is attached
      call.pause(); // reads nothing more until the task is over
      // A blocking open (in the thread pool): it completes once the task has opened the FIFO to read.
      await writeFile(gate, "go\n");
      const waited = await unary<{ task: Task }>(c.agent, "WaitTask", { taskId, timeoutMs: "60000" });
      expect(waited.task.status.phase).toBe("TASK_STATUS_SUCCEEDED");
      expect(await unary<{ status: string }>(c.health, "Check", { service: "solti.v1.SoltiApi" })).toEqual({ status: "SERVING" });
      const ended = new Promise<number>((resolve, reject) => {
        call.on("status", (st: grpc.StatusObject) => resolve(st.code));
        call.on("error", reject);
      });
      call.resume();
      expect(await ended).toBe(grpc.status.OK);
      // Every event is either delivered or counted as skipped: 200 000 lines plus runStarted and runFinished.
      expect(count.chunks + count.markers + count.skipped).toBe(lines + 2);
      expect(count.lagged).toBeGreaterThan(0);
    } finally {
      reader.close();
      rmSync(gateDir, { recursive: true, force: true });
    }
  });

  test("RunTask, CancelTask and a cancelled live log stream", async () => {
    await using a = await startAgent();
    using c = clients(a.grpcAddr);
    const run = await unary<{ task: Task; stdout: string[]; stderr: string[] }>(c.agent, "RunTask", { spec: bash("echo one; echo two"), timeoutMs: "20000" });
    expect([run.task.status.phase, run.stdout, run.stderr]).toEqual(["TASK_STATUS_SUCCEEDED", ["one", "two"], []]);

    const { taskId } = await unary<{ taskId: string }>(c.solti, "SubmitTask", { spec: bash("echo started; exec sleep 30") });
    const stream = serverStream<{ chunk?: { line: Buffer } }>(c.solti, "StreamTaskLogs", { taskId });
    stream.on("error", () => {});
    await new Promise<void>((resolve) => stream.on("data", (m: { chunk?: { line: Buffer } }) => m.chunk && resolve()));
    stream.cancel();
    const canceled = await unary<{ task: Task }>(c.agent, "CancelTask", { taskId });
    expect(canceled.task.status.phase).toBe("TASK_STATUS_CANCELED");

    const info = await unary<{ version: string; infoJson: string; capabilities: string[] }>(c.agent, "GetInfo", {});
    expect(JSON.parse(info.infoJson)).toMatchObject({ version: info.version, capabilities: info.capabilities });
  });
});
