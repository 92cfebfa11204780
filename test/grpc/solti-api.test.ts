/**
 * The six solti.v1.SoltiApi RPCs through a client built only from the .proto
 * files (proto-loader + grpc-js), against the fake task service.
 */
import { describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { parseTaskSpec } from "../../src/tasks/validate-spec.ts";
import { collect, failure, serverStream, unary } from "./proto-client.ts";
import { startServer } from "./start-server.ts";

const T0 = 1_712_750_400_000;

/** The grpcurl "submit a task (command)" example of the API document. */
const seedSpec = {
  slot: "my-job",
  kind: { subprocess: { command: { command: "echo", args: ["hello world"] }, failOnNonZero: true } },
  timeoutMs: "30000",
  restart: "RESTART_STRATEGY_NEVER",
  backoff: { jitter: "JITTER_STRATEGY_FULL", firstMs: "1000", maxMs: "10000", factor: 2.0 },
  admission: "ADMISSION_STRATEGY_DROP_IF_RUNNING",
};

/** The same spec in the REST shape. */
const seedRest = {
  slot: "my-job",
  kind: { subprocess: { mode: { command: { command: "echo", args: ["hello world"] } }, env: [], failOnNonZero: true } },
  timeout: 30000,
  restart: { type: "never" },
  backoff: { jitter: "full", firstMs: 1000, maxMs: 10000, factor: 2 },
  admission: "dropIfRunning",
  labels: {},
};

/** `TaskData` of a task submitted with `seedSpec`, as proto-loader decodes it (longs and enums as strings). */
function seedTaskData(id: string, status: Record<string, unknown>, resourceVersion = "1") {
  return {
    metadata: { id, createdAt: String(T0), updatedAt: String(T0), resourceVersion },
    spec: {
      slot: "my-job",
      kind: {
        kind: "subprocess",
        subprocess: { mode: "command", command: { command: "echo", args: ["hello world"] }, env: [], failOnNonZero: true },
      },
      timeoutMs: "30000",
      restart: "RESTART_STRATEGY_NEVER",
      backoff: { jitter: "JITTER_STRATEGY_FULL", firstMs: "1000", maxMs: "10000", factor: 2 },
      admission: "ADMISSION_STRATEGY_DROP_IF_RUNNING",
      labels: {},
    },
    status,
  };
}

async function submit(client: grpc.Client, spec: unknown = seedSpec): Promise<string> {
  const res = await unary<{ taskId: string }>(client, "SubmitTask", { spec });
  return res.taskId;
}

describe("solti.v1.SoltiApi", () => {
  test("SubmitTask hands the domain a REST-shaped spec and answers the task id", async () => {
    await using s = await startServer();
    expect(await unary(s.solti, "SubmitTask", { spec: seedSpec })).toEqual({ taskId: "tsk_01JR0000000000000000000001" });
    expect(s.fake.inputs).toEqual([seedRest]);
  });

  test("SubmitTask validation failures are INVALID_ARGUMENT with the REST message", async () => {
    await using s = await startServer();
    const cases: [unknown, string][] = [
      [{ ...seedSpec, restart: "RESTART_STRATEGY_UNSPECIFIED" }, "spec.restart: RESTART_STRATEGY_UNSPECIFIED is not allowed; use one of RESTART_STRATEGY_NEVER, RESTART_STRATEGY_ON_FAILURE, RESTART_STRATEGY_ALWAYS"],
      [{ ...seedSpec, admission: undefined }, "spec.admission: ADMISSION_STRATEGY_UNSPECIFIED is not allowed; use one of ADMISSION_STRATEGY_DROP_IF_RUNNING, ADMISSION_STRATEGY_REPLACE, ADMISSION_STRATEGY_QUEUE"],
      [{ ...seedSpec, backoff: { firstMs: "1", maxMs: "2", factor: 1 } }, "spec.backoff.jitter: JITTER_STRATEGY_UNSPECIFIED is not allowed; use one of JITTER_STRATEGY_NONE, JITTER_STRATEGY_FULL, JITTER_STRATEGY_EQUAL, JITTER_STRATEGY_DECORRELATED"],
      [{ ...seedSpec, kind: undefined }, "spec.kind: missing; set subprocess"],
      [{ ...seedSpec, kind: { subprocess: { failOnNonZero: true } } }, "spec.kind.subprocess.mode: missing; set command or script"],
      [{ ...seedSpec, kind: { subprocess: { script: { body: "eA==" } } } }, "spec.kind.subprocess.script.runtime: missing; set wellKnown or custom"],
      [{ ...seedSpec, kind: { subprocess: { script: { wellKnown: "SCRIPT_RUNTIME_UNSPECIFIED", body: "eA==" } } } }, "spec.kind.subprocess.script.wellKnown: SCRIPT_RUNTIME_UNSPECIFIED is not allowed; use one of SCRIPT_RUNTIME_BASH, SCRIPT_RUNTIME_PYTHON, SCRIPT_RUNTIME_NODE"],
      [{ ...seedSpec, kind: { wasm: { module: "m.wasm" } } }, "spec.kind: unsupported kind wasm (only subprocess is supported)"],
      [{ ...seedSpec, kind: { container: { image: "alpine" } } }, "spec.kind: unsupported kind container (only subprocess is supported)"],
      [undefined, "spec: missing"],
    ];
    for (const [spec, details] of cases) {
      expect(await failure(unary(s.solti, "SubmitTask", { spec }))).toEqual({ code: grpc.status.INVALID_ARGUMENT, details });
    }
    // Domain rules: the message is the one REST gives for the same spec (parseTaskSpec's).
    const restMessage = (spec: unknown) => {
      try {
        parseTaskSpec(spec);
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error("REST accepted the spec");
    };
    const badSlot = await failure(unary(s.solti, "SubmitTask", { spec: { ...seedSpec, slot: ".." } }));
    expect(badSlot).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: restMessage({ ...seedRest, slot: ".." }) });
    expect(badSlot.details).toStartWith("spec.slot");
    const zeroTimeout = await failure(unary(s.solti, "SubmitTask", { spec: { ...seedSpec, timeoutMs: "0" } }));
    expect(zeroTimeout).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: restMessage({ ...seedRest, timeout: 0 }) });
    expect(zeroTimeout.details).toStartWith("spec.timeout");
  });

  test("GetTaskStatus: the task, or OK and {} for an unknown id", async () => {
    await using s = await startServer();
    const id = await submit(s.solti);
    expect(await unary(s.solti, "GetTaskStatus", { taskId: id })).toEqual({
      task: seedTaskData(id, { phase: "TASK_STATUS_PENDING", attempt: 0 }),
      _task: "task",
    });
    s.fake.setPhase(id, "failed", { exitCode: 1, error: "exit code 1" });
    expect(await unary(s.solti, "GetTaskStatus", { taskId: id })).toEqual({
      task: seedTaskData(id, { phase: "TASK_STATUS_FAILED", attempt: 1, exitCode: 1, _exitCode: "exitCode", error: "exit code 1", _error: "error" }, "2"),
      _task: "task",
    });
    expect(await unary(s.solti, "GetTaskStatus", { taskId: "tsk_unknown" })).toEqual({});
  });

  test("ListTasks: filters, limit 0 means 100, total counts every match, limit > 1000 is rejected", async () => {
    await using s = await startServer();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await submit(s.solti, { ...seedSpec, slot: i === 2 ? "other" : "my-job" }));
    s.fake.setPhase(ids[1]!, "running");
    type List = { tasks: { metadata: { id: string } }[]; total: number };
    const idsOf = (l: List) => ({ ids: l.tasks.map((t) => t.metadata.id), total: l.total });
    expect(idsOf(await unary<List>(s.solti, "ListTasks", {}))).toEqual({ ids, total: 3 });
    expect(idsOf(await unary<List>(s.solti, "ListTasks", { slot: "my-job" }))).toEqual({ ids: ids.slice(0, 2), total: 2 });
    expect(idsOf(await unary<List>(s.solti, "ListTasks", { status: "TASK_STATUS_RUNNING" }))).toEqual({ ids: ids.slice(1, 2), total: 1 });
    expect(idsOf(await unary<List>(s.solti, "ListTasks", { limit: 1, offset: 1 }))).toEqual({ ids: ids.slice(1, 2), total: 3 });
    expect(idsOf(await unary<List>(s.solti, "ListTasks", { desc: true, limit: 2 }))).toEqual({ ids: ids.slice(1).reverse(), total: 3 });
    expect(await failure(unary(s.solti, "ListTasks", { limit: 1001 }))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: "limit: must be an integer 0..1000 (0 means 100), got 1001",
    });
    expect((await failure(unary(s.solti, "ListTasks", { status: "TASK_STATUS_UNSPECIFIED" }))).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  test("ListTaskRuns: the runs, NOT_FOUND for an unknown id", async () => {
    await using s = await startServer();
    const id = await submit(s.solti);
    expect(await unary(s.solti, "ListTaskRuns", { taskId: id })).toEqual({ runs: [] });
    s.fake.addRun(id, { attempt: 1, phase: "failed", startedAt: T0, finishedAt: T0 + 2000, exitCode: 1, error: "exit code 1" });
    s.fake.addRun(id, { attempt: 2, phase: "running", startedAt: T0 + 5000 });
    expect(await unary(s.solti, "ListTaskRuns", { taskId: id })).toEqual({
      runs: [
        {
          attempt: 1,
          status: "TASK_STATUS_FAILED",
          startedAt: String(T0),
          finishedAt: String(T0 + 2000),
          _finishedAt: "finishedAt",
          exitCode: 1,
          _exitCode: "exitCode",
          error: "exit code 1",
          _error: "error",
        },
        { attempt: 2, status: "TASK_STATUS_RUNNING", startedAt: String(T0 + 5000) },
      ],
    });
    expect(await failure(unary(s.solti, "ListTaskRuns", { taskId: "tsk_nope" }))).toEqual({
      code: grpc.status.NOT_FOUND,
      details: "task tsk_nope not found",
    });
  });

  test("NOT_FOUND for a 70 000-character id shows the id cut, and the connection carries on", async () => {
    await using s = await startServer();
    const id = await submit(s.solti);
    const long = "t".repeat(70_000);
    // Uncut, the id would not fit the trailer: the call would end INTERNAL and take the connection down.
    expect(await failure(unary(s.solti, "ListTaskRuns", { taskId: long }))).toEqual({
      code: grpc.status.NOT_FOUND,
      details: `task ${"t".repeat(80)}… not found`,
    });
    expect(await unary(s.solti, "ListTaskRuns", { taskId: id })).toEqual({ runs: [] });
  });

  test("DeleteTask purges and is idempotent", async () => {
    await using s = await startServer();
    const id = await submit(s.solti);
    expect(await unary(s.solti, "DeleteTask", { taskId: id })).toEqual({});
    expect(await unary(s.solti, "DeleteTask", { taskId: id })).toEqual({});
    expect(await unary(s.solti, "DeleteTask", { taskId: "tsk_never_existed" })).toEqual({});
    expect(await unary(s.solti, "GetTaskStatus", { taskId: id })).toEqual({});
  });

  test("StreamTaskLogs: retained then live events, ends OK when the task is terminal", async () => {
    await using s = await startServer();
    const id = await submit(s.solti);
    s.fake.setPhase(id, "running");
    s.fake.hub.runStarted(id, 1, T0);
    s.fake.hub.lines(id, 1, "stdout", ["hello"], T0 + 1);
    const stream = serverStream(s.solti, "StreamTaskLogs", { taskId: id });
    const done = collect(stream);
    // Live events go out once the retained ones arrived (the subscription is in place).
    let seen = 0;
    stream.on("data", () => {
      if (++seen !== 2) return;
      s.fake.hub.lines(id, 1, "stderr", ["oops"], T0 + 2);
      s.fake.hub.runFinished(id, 1, undefined, T0 + 3);
      s.fake.setPhase(id, "failed");
    });
    expect(await done).toEqual({
      code: grpc.status.OK,
      details: "OK",
      messages: [
        { kind: "runStarted", runStarted: { attempt: 1, startedAt: String(T0) } },
        {
          kind: "chunk",
          chunk: { attempt: 1, stream: "OUTPUT_STREAM_KIND_STDOUT", seq: "0", ts: String(T0 + 1), line: Buffer.from("hello") },
        },
        {
          kind: "chunk",
          chunk: { attempt: 1, stream: "OUTPUT_STREAM_KIND_STDERR", seq: "0", ts: String(T0 + 2), line: Buffer.from("oops") },
        },
        { kind: "runFinished", runFinished: { attempt: 1, finishedAt: String(T0 + 3) } },
      ],
    });
    expect(s.fake.openLogs()).toBe(0);
  });

  test("StreamTaskLogs: NOT_FOUND for an unknown task", async () => {
    await using s = await startServer();
    expect(await collect(serverStream(s.solti, "StreamTaskLogs", { taskId: "tsk_nope" }))).toEqual({
      code: grpc.status.NOT_FOUND,
      details: "task tsk_nope not found",
      messages: [],
    });
  });

  test("StreamTaskLogs: a batch larger than the write buffer arrives whole and in order (backpressure)", async () => {
    await using s = await startServer();
    const id = await submit(s.solti);
    s.fake.setPhase(id, "running");
    const lines = Array.from({ length: 900 }, (_, i) => `line ${i} ${"x".repeat(1000)}`);
    s.fake.hub.runStarted(id, 1, T0);
    s.fake.hub.lines(id, 1, "stdout", lines, T0);
    s.fake.setPhase(id, "succeeded");
    const { code, messages } = await collect<{ chunk?: { line: Buffer } }>(serverStream(s.solti, "StreamTaskLogs", { taskId: id }));
    expect(code).toBe(grpc.status.OK);
    expect(messages.slice(1).map((m) => m.chunk?.line.toString())).toEqual(lines);
  });

  test("StreamTaskLogs: a client cancel closes the subscription", async () => {
    await using s = await startServer();
    const id = await submit(s.solti);
    s.fake.setPhase(id, "running");
    s.fake.hub.runStarted(id, 1, T0);
    const stream = serverStream(s.solti, "StreamTaskLogs", { taskId: id });
    const status = new Promise<number>((resolve) => stream.on("error", (e: grpc.ServiceError) => resolve(e.code)));
    await new Promise<void>((resolve) => stream.once("data", () => resolve()));
    expect(s.fake.openLogs()).toBe(1);
    // The handler now waits for the next batch; cancelling must end that wait.
    stream.cancel();
    expect(await status).toBe(grpc.status.CANCELLED);
    await s.fake.allClosed();
    expect([s.fake.openLogs(), s.fake.hub.stats().subscribers]).toEqual([0, 0]);
  });
});
