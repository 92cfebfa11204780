/**
 * tasklane.v1.AgentService through a client built only from the .proto
 * files, against the fake task service.
 */
import { describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { failure, serverStream, unary } from "./proto-client.ts";
import { startServer, TEST_INFO } from "./start-server.ts";

const spec = {
  slot: "my-job",
  kind: { subprocess: { command: { command: "echo", args: ["hi"] } } },
  timeoutMs: "1000",
  restart: "RESTART_STRATEGY_NEVER",
  admission: "ADMISSION_STRATEGY_QUEUE",
};

type TaskReply = { task: { metadata: { id: string; resourceVersion: string }; status: Record<string, unknown> } };

const phaseOf = (r: TaskReply) => r.task.status;

describe("tasklane.v1.AgentService", () => {
  test("CancelTask, StartTask, RestartTask answer the task; unknown ids are NOT_FOUND", async () => {
    await using s = await startServer();
    const { taskId } = await unary<{ taskId: string }>(s.solti, "SubmitTask", { spec });
    expect(phaseOf(await unary<TaskReply>(s.agent, "StartTask", { taskId }))).toEqual({ phase: "TASK_STATUS_RUNNING", attempt: 1 });
    expect(phaseOf(await unary<TaskReply>(s.agent, "CancelTask", { taskId }))).toEqual({ phase: "TASK_STATUS_CANCELED", attempt: 1 });
    expect(phaseOf(await unary<TaskReply>(s.agent, "RestartTask", { taskId }))).toEqual({ phase: "TASK_STATUS_RUNNING", attempt: 2 });
    for (const method of ["CancelTask", "StartTask", "RestartTask", "WaitTask"]) {
      expect(await failure(unary(s.agent, method, { taskId: "tsk_nope" }))).toEqual({
        code: grpc.status.NOT_FOUND,
        details: "task tsk_nope not found",
      });
    }
  });

  test("WaitTask resolves when the task becomes terminal; a too long timeout is the domain's INVALID_ARGUMENT", async () => {
    await using s = await startServer();
    const { taskId } = await unary<{ taskId: string }>(s.solti, "SubmitTask", { spec });
    const waited = unary<TaskReply>(s.agent, "WaitTask", { taskId, timeoutMs: "600000" });
    s.fake.setPhase(taskId, "succeeded", { exitCode: 0 });
    expect(phaseOf(await waited)).toEqual({ phase: "TASK_STATUS_SUCCEEDED", attempt: 1, exitCode: 0, _exitCode: "exitCode" });
    expect(await failure(unary(s.agent, "WaitTask", { taskId, timeoutMs: "600001" }))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: "timeoutMs: must be an integer 0..600000, got 600001",
    });
  });

  test("WaitTask: a client cancel aborts the domain wait", async () => {
    await using s = await startServer();
    const { taskId } = await unary<{ taskId: string }>(s.solti, "SubmitTask", { spec });
    const wait = s.fake.wait;
    const started = Promise.withResolvers<AbortSignal | undefined>();
    s.fake.wait = (id, timeoutMs, caller, signal) => {
      started.resolve(signal);
      return wait(id, timeoutMs, caller, signal);
    };
    const call = (s.agent as unknown as Record<string, (r: unknown, cb: (e: grpc.ServiceError | null) => void) => grpc.ClientUnaryCall>).WaitTask!;
    const code = new Promise<number>((resolve) => {
      const c = call.call(s.agent, { taskId, timeoutMs: "600000" }, (e) => resolve(e?.code ?? 0));
      void started.promise.then(() => c.cancel());
    });
    expect(await code).toBe(grpc.status.CANCELLED);
    const signal = await started.promise;
    if (!signal) throw new Error("the wait got no signal");
    if (!signal.aborted) await new Promise((resolve) => signal.addEventListener("abort", resolve));
    expect(signal.aborted).toBe(true);
  });

  test("RunTask submits, waits and returns task, runs and output", async () => {
    await using s = await startServer();
    const { task, ...rest } = await unary<TaskReply & Record<string, unknown>>(s.agent, "RunTask", { spec, timeoutMs: "0" });
    expect(rest).toEqual({
      runs: [
        {
          attempt: 1,
          status: "TASK_STATUS_SUCCEEDED",
          startedAt: "1712750400000",
          finishedAt: "1712750400000",
          _finishedAt: "finishedAt",
          exitCode: 0,
          _exitCode: "exitCode",
        },
      ],
      stdout: ["hello"],
      stderr: [],
    });
    expect(task.status).toEqual({ phase: "TASK_STATUS_SUCCEEDED", attempt: 1, exitCode: 0, _exitCode: "exitCode" });
    expect(await failure(unary(s.agent, "RunTask", { spec: { ...spec, restart: undefined } }))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details:
        "spec.restart: RESTART_STRATEGY_UNSPECIFIED is not allowed; use one of RESTART_STRATEGY_NEVER, RESTART_STRATEGY_ON_FAILURE, RESTART_STRATEGY_ALWAYS",
    });
  });

  test("WatchTasks streams changes and deletions; a cancel closes the subscription", async () => {
    await using s = await startServer();
    const stream = serverStream<{ id: string; kind: string; task?: TaskReply["task"]; deletedId?: string }>(s.agent, "WatchTasks", {});
    const events: string[] = [];
    const done = new Promise<void>((resolve) =>
      stream.on("data", (e: { id: string; kind: string; task?: TaskReply["task"]; deletedId?: string }) => {
        events.push(`${e.id} ${e.kind} ${e.kind === "task" ? e.task?.status.phase : e.deletedId}`);
        if (events.length === 3) resolve();
      }),
    );
    stream.on("error", () => {});
    const { taskId } = await unary<{ taskId: string }>(s.solti, "SubmitTask", { spec });
    s.fake.setPhase(taskId, "running");
    await unary(s.solti, "DeleteTask", { taskId });
    await done;
    expect(events).toEqual([`1 task TASK_STATUS_PENDING`, `2 task TASK_STATUS_RUNNING`, `3 deletedId ${taskId}`]);
    expect(s.fake.openWatches()).toBe(1);
    stream.cancel();
    await s.fake.allClosed();
    expect(s.fake.openWatches()).toBe(0);
  });

  test("WatchTasks resumes after a cursor and filters by slot", async () => {
    await using s = await startServer();
    for (const slot of ["a", "b", "a"]) await unary(s.solti, "SubmitTask", { spec: { ...spec, slot } });
    const stream = serverStream<{ id: string }>(s.agent, "WatchTasks", { after: "1", slot: "a" });
    const first = await new Promise<{ id: string }>((resolve) => stream.once("data", resolve));
    stream.on("error", () => {});
    stream.cancel();
    expect(first.id).toBe("3");
  });

  test("GetInfo maps the info document and carries it whole in infoJson", async () => {
    await using s = await startServer();
    expect(await unary(s.agent, "GetInfo", {})).toEqual({
      version: "0.0.0-test",
      uptimeMs: "5",
      hostname: "",
      os: "",
      arch: "",
      dataDir: "",
      maxConcurrent: 4,
      maxBodyBytes: "0",
      maxScriptBytes: "0",
      capabilities: ["cancel"],
      infoJson: JSON.stringify(TEST_INFO),
    });
  });
});
