/**
 * The six solti.v1.SoltiApi RPCs through a client built only from the .proto
 * files (proto-loader + grpc-js), against the fake task service.
 */
import { describe, expect, test } from "bun:test";
import { fromJson, toBinary, type JsonValue } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { SubmitTaskRequestSchema } from "../../src/gen/solti/v1/api_pb.ts";
import { MAX_SCRIPT_BYTES, MAX_SPEC_TEXT_BYTES, parseTaskSpec, specTextBytes } from "../../src/tasks/validate-spec.ts";
import { commandSpec, startAgent } from "../helpers/start-agent.ts";
import { collect, failure, protoClient, serverStream, unary } from "./proto-client.ts";
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
    // …with the field named as the proto names it where the two shapes differ.
    const zeroTimeout = await failure(unary(s.solti, "SubmitTask", { spec: { ...seedSpec, timeoutMs: "0" } }));
    expect(restMessage({ ...seedRest, timeout: 0 })).toStartWith("spec.timeout: ");
    expect(zeroTimeout).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: restMessage({ ...seedRest, timeout: 0 }).replace("spec.timeout: ", "spec.timeoutMs: ") });
    const renamed: [unknown, string][] = [
      [{ ...seedSpec, kind: { subprocess: { command: { command: " " } } } }, "spec.kind.subprocess.command.command: must not be empty"],
      [{ ...seedSpec, kind: { subprocess: { command: { command: "echo", args: ["a", "b\u0000"] } } } }, "spec.kind.subprocess.command.args[1]: "],
      [{ ...seedSpec, kind: { subprocess: { script: { custom: { command: "ruby", flag: "" }, body: "eA==" } } } }, "spec.kind.subprocess.script.custom.flag: must not be empty"],
      [{ ...seedSpec, kind: { subprocess: { script: { wellKnown: "SCRIPT_RUNTIME_BASH", body: "not base64!" } } } }, "spec.kind.subprocess.script.body: "],
      [{ ...seedSpec, restart: "RESTART_STRATEGY_ALWAYS", restartIntervalMs: "604800001" }, "spec.restartIntervalMs: "],
      [{ ...seedSpec, backoff: { jitter: "JITTER_STRATEGY_NONE", firstMs: "5", maxMs: "1", factor: 2 } }, "spec.backoff.maxMs: "],
    ];
    for (const [spec, start] of renamed) {
      const f = await failure(unary(s.solti, "SubmitTask", { spec }));
      expect(f.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(f.details).toStartWith(start);
    }
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
    expect(await collect(serverStream(s.solti, "StreamTaskLogs", { taskId: "" }))).toEqual({
      code: grpc.status.NOT_FOUND,
      details: "task id is empty: no such task",
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

/** `seedSpec` with `args` as its command's arguments (proto JSON shape, as proto-loader takes it). */
const seedWithArgs = (args: string[], slot = "my-job") => ({
  ...seedSpec,
  slot,
  kind: { subprocess: { command: { command: "echo", args }, failOnNonZero: true } },
});

/** The REST shape of `seedWithArgs`. */
const restWithArgs = (args: string[], slot = "my-job") => ({
  ...seedRest,
  slot,
  kind: { subprocess: { ...seedRest.kind.subprocess, mode: { command: { command: "echo", args } } } },
});

/** Spec text of `restSpec` once normalized, whatever its size. */
const textOf = (restSpec: unknown) => specTextBytes(parseTaskSpec(restSpec, { maxSpecBytes: Number.POSITIVE_INFINITY }));

/** Length of one ASCII argument that brings `make([arg])`'s text to exactly `target` bytes (a length of 4 varint bytes). */
const fillTo = (target: number, make: (args: string[]) => unknown) => target - textOf(make([""])) - 3;

const tooLargeMessage = (size: number) =>
  `spec: ${size} bytes of text, more than the ${MAX_SPEC_TEXT_BYTES} a task may hold (it must fit one 4 MiB gRPC message)`;

type Page = { tasks: { metadata: { id: string }; spec: { kind: { subprocess: { command?: { args: string[] } } } } }[]; total: number };

/** Every id ListTasks gives for `req`, paging with offset += tasks.length; each page's total and size. */
async function pageThrough(client: grpc.Client, req: Record<string, unknown>): Promise<{ ids: string[]; pages: { size: number; total: number }[] }> {
  const ids: string[] = [];
  const pages: { size: number; total: number }[] = [];
  for (let offset = 0; ; ) {
    const page = await unary<Page>(client, "ListTasks", { ...req, offset });
    if (page.tasks.length === 0) return { ids, pages };
    ids.push(...page.tasks.map((t) => t.metadata.id));
    pages.push({ size: page.tasks.length, total: page.total });
    offset += page.tasks.length;
    if (pages.length > 50) throw new Error("paging does not end");
  }
}

describe("every accepted task can be read back in one 4 MiB message", () => {
  test("a SubmitTask request of exactly 4 MiB is RESOURCE_EXHAUSTED with the REST message; just under the limit is accepted and readable", async () => {
    await using s = await startServer();
    // The audit's case: one huge argument, the request exactly 4 194 304 bytes (the server's receive limit).
    const requestSize = (n: number) => toBinary(SubmitTaskRequestSchema, fromJson(SubmitTaskRequestSchema, { spec: seedWithArgs(["a".repeat(n)]) } as JsonValue)).length;
    let n = 4_194_304 - requestSize(0);
    n -= requestSize(n) - 4_194_304;
    expect(requestSize(n)).toBe(4_194_304);
    expect(await failure(unary(s.solti, "SubmitTask", { spec: seedWithArgs(["a".repeat(n)]) }))).toEqual({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: tooLargeMessage(textOf(restWithArgs(["a".repeat(n)]))),
    });
    // One byte over the limit, then exactly at it.
    const fill = fillTo(MAX_SPEC_TEXT_BYTES, (args) => restWithArgs(args));
    expect(await failure(unary(s.solti, "SubmitTask", { spec: seedWithArgs(["a".repeat(fill + 1)]) }))).toEqual({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: tooLargeMessage(MAX_SPEC_TEXT_BYTES + 1),
    });
    expect(s.fake.inputs).toHaveLength(2); // both reached the domain: the rule is not the transport's
    const id = await submit(s.solti, seedWithArgs(["a".repeat(fill)]));
    // Readable with a 4 MiB receive limit, and not only when fresh: with a long error too.
    s.fake.setPhase(id, "failed", { exitCode: 1, error: `exit code 1 ${"e".repeat(16_000)}` });
    const got = await unary<{ task: Page["tasks"][number] }>(s.solti, "GetTaskStatus", { taskId: id });
    expect([got.task.metadata.id, got.task.spec.kind.subprocess.command?.args[0]?.length]).toEqual([id, fill]);
    const list = await unary<Page>(s.solti, "ListTasks", {});
    expect([list.total, list.tasks.map((t) => t.metadata.id)]).toEqual([1, [id]]);
  });

  test("ListTasks cuts its page at the byte budget: total counts every match, paging with offset += tasks.length reaches every task", async () => {
    await using s = await startServer();
    const ids: string[] = [];
    const sizes = [1_500_000, 2_000_000, 1_800_000, 300, 1_600_000, 2_000_000, 1_900_000];
    for (const [i, size] of sizes.entries()) ids.push(await submit(s.solti, seedWithArgs(["b".repeat(size)], i % 2 === 0 ? "even" : "odd")));
    const all = await pageThrough(s.solti, {});
    expect(all).toEqual({
      ids,
      pages: [
        { size: 2, total: 7 }, // 1.5 + 2.0 MB
        { size: 3, total: 7 }, // 1.8 MB + 300 B + 1.6 MB
        { size: 2, total: 7 }, // 2.0 + 1.9 MB
      ],
    });
    // With a limit and a filter, as before: fewer tasks than the limit only when the bytes say so.
    expect(await pageThrough(s.solti, { slot: "even", limit: 1 })).toEqual({
      ids: ids.filter((_, i) => i % 2 === 0),
      pages: [1, 1, 1, 1].map((size) => ({ size, total: 4 })),
    });
    expect(await pageThrough(s.solti, { desc: true })).toEqual({
      ids: [...ids].reverse(),
      pages: [
        { size: 2, total: 7 },
        { size: 3, total: 7 },
        { size: 2, total: 7 },
      ],
    });
  });
});

describe("over the real agent: REST and gRPC accept and refuse the same specs, and what is accepted is readable over gRPC", () => {
  function grpcClient(grpcAddr: string) {
    const c = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", Number(grpcAddr.split(":").at(-1)));
    return Object.assign(c, { [Symbol.dispose]: () => c.close() });
  }
  const hugeCommand = (args: string[], slot: string) => commandSpec("true", args, { slot, hold: true });

  test("one byte over the limit: REST 413 PayloadTooLarge, gRPC RESOURCE_EXHAUSTED, same message; at the limit: stored and readable", async () => {
    await using a = await startAgent();
    using solti = grpcClient(a.grpcAddr);
    const make = (args: string[]) => hugeCommand(args, "huge");
    const fill = fillTo(MAX_SPEC_TEXT_BYTES, make);
    const over = await a.json("POST", "/api/v1/tasks", { spec: make(["a".repeat(fill + 1)]) });
    expect(over).toEqual({ status: 413, body: { error: "PayloadTooLarge", message: tooLargeMessage(MAX_SPEC_TEXT_BYTES + 1) } });
    const overGrpc = {
      ...seedWithArgs(["a".repeat(fill + 1)], "huge"),
      kind: { subprocess: { command: { command: "true", args: ["a".repeat(fill + 1)] }, failOnNonZero: true } },
      hold: true,
    };
    expect(textOf(restWithArgs(["a".repeat(fill + 1)], "huge"))).toBe(textOf(make(["a".repeat(fill + 1)])));
    expect(await failure(unary(solti, "SubmitTask", { spec: overGrpc }))).toEqual({ code: grpc.status.RESOURCE_EXHAUSTED, details: over.body.message });
    expect((await a.json("GET", "/api/v1/tasks")).body).toEqual({ tasks: [], total: 0 });

    const ok = await a.json("POST", "/api/v1/tasks", { spec: make(["a".repeat(fill)]) });
    expect(ok).toEqual({ status: 201, body: { task_id: expect.any(String), admission: "queued" } });
    const taskId = ok.body.task_id as string;
    const got = await unary<{ task: Page["tasks"][number] }>(solti, "GetTaskStatus", { taskId });
    expect([got.task.metadata.id, got.task.spec.kind.subprocess.command?.args[0]?.length]).toEqual([taskId, fill]);
    expect((await a.json("GET", `/api/v1/tasks/${taskId}`)).body.task.spec.kind.subprocess.mode.command.args[0].length).toBe(fill);
  });

  test("two tasks with 2 MiB scripts (sent over REST): ListTasks of their slot pages one at a time, as REST lists both", async () => {
    await using a = await startAgent();
    using solti = grpcClient(a.grpcAddr);
    const ids: string[] = [];
    for (const c of ["a", "b"]) {
      const body = Buffer.alloc(MAX_SCRIPT_BYTES, `# ${c}\n`).toString("base64");
      const spec = { slot: "scripts", kind: { subprocess: { mode: { script: { runtime: "bash", body } } } }, hold: true };
      const res = await a.json("POST", "/api/v1/tasks", { spec });
      expect(res.status).toBe(201);
      ids.push(res.body.task_id);
    }
    await a.json("POST", "/api/v1/tasks", { spec: commandSpec("true", [], { hold: true }) });
    const rest = await a.json("GET", "/api/v1/tasks?slot=scripts");
    expect([rest.body.total, rest.body.tasks.map((t: { metadata: { id: string } }) => t.metadata.id)]).toEqual([2, ids]);
    expect(await pageThrough(solti, { slot: "scripts" })).toEqual({ ids, pages: [{ size: 1, total: 2 }, { size: 1, total: 2 }] });
    const all = await pageThrough(solti, {});
    expect([all.ids.length, all.pages.map((p) => p.total)]).toEqual([3, all.pages.map(() => 3)]);
  });
});
