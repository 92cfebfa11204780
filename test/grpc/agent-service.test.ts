/**
 * tasklane.v1.AgentService through a client built only from the .proto
 * files, against the fake task service.
 */
import { describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { MAX_SPEC_TEXT_BYTES, parseTaskSpec, specTextBytes } from "../../src/tasks/validate-spec.ts";
import { startAgent } from "../helpers/start-agent.ts";
import { failure, protoClient, serverStream, unary } from "./proto-client.ts";
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
    // A domain rule names the field as the proto does.
    const zero = await failure(unary(s.agent, "RunTask", { spec: { ...spec, timeoutMs: "0" } }));
    expect(zero.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(zero.details).toStartWith("spec.timeoutMs: must be an integer > 0");
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

describe("message size: answers and events fit 4 MiB", () => {
  /** `spec` with one ASCII argument of `n` bytes. */
  const withArg = (n: number) => ({ ...spec, kind: { subprocess: { command: { command: "echo", args: ["a".repeat(n)] } } } });
  const restWithArg = (n: number) => ({
    slot: "my-job",
    kind: { subprocess: { mode: { command: { command: "echo", args: ["a".repeat(n)] } }, failOnNonZero: false } },
    timeout: 1000,
    restart: { type: "never" },
    admission: "queue",
    labels: {},
  });
  /** The argument that brings the spec to exactly the limit (its length takes 4 varint bytes). */
  const fill = MAX_SPEC_TEXT_BYTES - specTextBytes(parseTaskSpec(restWithArg(0))) - 3;

  test("WatchTasks: the event of a task at the size limit arrives (an event is the task plus an id)", async () => {
    await using s = await startServer();
    expect(specTextBytes(parseTaskSpec(restWithArg(fill)))).toBe(MAX_SPEC_TEXT_BYTES);
    type Event = { id: string; task?: { metadata: { id: string }; spec: { kind: { subprocess: { command: { args: string[] } } } } } };
    const stream = serverStream<Event>(s.agent, "WatchTasks", {});
    stream.on("error", () => {});
    const first = new Promise<Event>((resolve) => stream.once("data", resolve));
    const { taskId } = await unary<{ taskId: string }>(s.solti, "SubmitTask", { spec: withArg(fill) });
    const event = await first;
    stream.cancel();
    expect([event.id, event.task?.metadata.id, event.task?.spec.kind.subprocess.command.args[0]?.length]).toEqual(["1", taskId, fill]);
  });

  test("RunTask: a large task with 100 long lines on each stream answers with the newest lines that fit", async () => {
    await using s = await startServer();
    const line = (stream: string, i: number) => `${stream} ${String(i).padStart(3, "0")} ${"x".repeat(16_000)}`;
    const stdout = Array.from({ length: 100 }, (_, i) => line("out", i));
    const stderr = Array.from({ length: 100 }, (_, i) => line("err", i));
    const run = s.fake.run;
    s.fake.run = async (input, caller, timeoutMs, signal) => {
      const out = await run(input, caller, timeoutMs, signal);
      return { ...out, output: { stdout, stderr } };
    };
    const res = await unary<{ task: { spec: { kind: { subprocess: { command: { args: string[] } } } } }; stdout: string[]; stderr: string[] }>(
      s.agent,
      "RunTask",
      { spec: withArg(1_000_000) },
    );
    expect(res.task.spec.kind.subprocess.command.args[0]?.length).toBe(1_000_000);
    // 3.2 MB of lines and a 1 MB task: some lines had to go, the oldest of each stream, about as many of each.
    const [o, e] = [res.stdout.length, res.stderr.length];
    expect(o + e).toBeLessThan(200);
    expect(o + e).toBeGreaterThan(150);
    expect(Math.abs(o - e)).toBeLessThanOrEqual(1);
    expect({ stdout: res.stdout, stderr: res.stderr }).toEqual({ stdout: stdout.slice(100 - o), stderr: stderr.slice(100 - e) });
  });

  test("RunTask over the real agent: a 1 MiB script printing 150 lines of 16 000 bytes on each stream", async () => {
    await using a = await startAgent();
    const agent = protoClient("tasklane/v1/agent.proto", "tasklane.v1.AgentService", Number(a.grpcAddr.split(":").at(-1)));
    try {
      const script = [
        `: <<'PAD'`,
        ..."p".repeat(1024 * 1024).match(/.{1,1000}/g)!,
        "PAD",
        `l=$(head -c 16000 /dev/zero | tr '\\0' x)`,
        `for i in $(seq 1 150); do echo "out $i $l"; echo "err $i $l" >&2; done`,
      ].join("\n");
      const runSpec = {
        slot: "loud",
        kind: { subprocess: { script: { wellKnown: "SCRIPT_RUNTIME_BASH", body: Buffer.from(script).toString("base64") }, failOnNonZero: true } },
        timeoutMs: "30000",
        restart: "RESTART_STRATEGY_NEVER",
        admission: "ADMISSION_STRATEGY_QUEUE",
      };
      const res = await unary<{ task: { status: { phase: string } }; stdout: string[]; stderr: string[] }>(agent, "RunTask", { spec: runSpec, timeoutMs: "60000" });
      expect(res.task.status.phase).toBe("TASK_STATUS_SUCCEEDED");
      const numbers = (lines: string[], stream: string) =>
        lines.map((l) => {
          expect(l).toEndWith("x".repeat(16_000));
          return Number(l.slice(stream.length + 1, l.indexOf(" ", stream.length + 1)));
        });
      const [o, e] = [numbers(res.stdout, "out"), numbers(res.stderr, "err")];
      // Not the 100 + 100 lines REST's ?wait=true gives: the newest of each stream that fit.
      expect(o.length + e.length).toBeLessThan(200);
      expect(o.length + e.length).toBeGreaterThan(120);
      expect(Math.abs(o.length - e.length)).toBeLessThanOrEqual(1);
      const newest = (n: number) => Array.from({ length: n }, (_, i) => 151 - n + i);
      expect({ o, e }).toEqual({ o: newest(o.length), e: newest(e.length) });
    } finally {
      agent.close();
    }
  });
});
