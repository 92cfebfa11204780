/**
 * Contract suite, solti v1 core: the same scenarios over REST and over gRPC
 * (submit, get, list, runs, logs, delete, unknown ids), asserting the same
 * domain outcomes. Every task read over one transport is also read over the
 * other and must be the same object.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { LogEvent, Task } from "../../src/tasks/model.ts";
import { SoltiApi } from "../../src/gen/solti/v1/api_pb.ts";
import { processGone } from "../helpers/process.ts";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { tempDir, waitForLine } from "../helpers/task-control.ts";
import { failure, type ContractClient } from "./client.ts";
import { metaOf, notFound as notFoundOf, runOf } from "./matchers.ts";
import { createGrpcClient, grpcConnection, unary } from "./grpc-client.ts";
import { createRestClient } from "./rest-client.ts";
import { bashSpec, commandMode, FAST_BACKOFF, normalized, scriptMode, specOf, TRANSPORTS, uniqueSlot } from "./specs.ts";

// Real processes and servers: allow more than the 5 s default when run on its own.
setDefaultTimeout(30_000);

const WAIT = 20_000;
let agent: TestAgent;
let rest: ContractClient;
let grpcClient: ContractClient;

beforeAll(async () => {
  agent = await startAgent();
  rest = createRestClient(agent);
  grpcClient = createGrpcClient(agent);
});
afterAll(async () => {
  rest?.[Symbol.dispose]();
  grpcClient?.[Symbol.dispose]();
  await agent?.[Symbol.asyncDispose]();
});

/** Read the task over both transports: they must agree; answers it. */
async function readBoth(id: string): Promise<Task | undefined> {
  const [viaRest, viaGrpc] = await Promise.all([rest.get(id), grpcClient.get(id)]);
  expect(viaGrpc).toEqual(viaRest);
  return viaRest;
}

/** Chunks of one attempt sorted by (stream, seq): stdout and stderr interleave freely. */
function normalizeLogs(events: LogEvent[]): LogEvent[] {
  const out: LogEvent[] = [];
  let chunks: Extract<LogEvent, { type: "chunk" }>[] = [];
  const flush = () => {
    chunks.sort((x, y) => x.stream.localeCompare(y.stream) || x.seq - y.seq);
    out.push(...chunks);
    chunks = [];
  };
  for (const e of events) {
    if (e.type === "chunk") chunks.push(e);
    else {
      flush();
      out.push(e);
    }
  }
  flush();
  return out;
}

const chunk = (attempt: number, stream: "stdout" | "stderr", seq: number, line: string): LogEvent => ({
  type: "chunk",
  attempt,
  stream,
  seq,
  ts: expect.any(Number),
  line,
});
const started = (attempt: number): LogEvent => ({ type: "runStarted", attempt, startedAt: expect.any(Number) });
const finished = (attempt: number, exitCode?: number): LogEvent =>
  exitCode === undefined
    ? { type: "runFinished", attempt, finishedAt: expect.any(Number) }
    : { type: "runFinished", attempt, exitCode, finishedAt: expect.any(Number) };
const meta = metaOf;

describe.each(TRANSPORTS)("contract over %s", (_transport, factory) => {
  let c: ContractClient;
  beforeAll(() => {
    c = factory(agent);
  });
  afterAll(() => c?.[Symbol.dispose]());

  test.each([
    ["a command", commandMode("sh", ["-c", "echo from sh"]), "from sh"],
    ["a bash script", scriptMode("bash", 'echo "from bash $1"', ["arg"]), "from bash arg"],
    ["a python script", scriptMode("python", "import sys\nprint('from python', sys.argv[1])", ["arg"]), "from python arg"],
    ["a node script", scriptMode("node", "console.log('from node', process.argv[2])", ["arg"]), "from node arg"],
  ])("submit %s → succeeded with exit code 0, runs and logs", async (_what, mode, line) => {
    const spec = specOf(mode);
    const { taskId } = await c.submit(spec);
    expect(taskId).toMatch(/^tsk_[0-9A-HJKMNP-TV-Z]{26}$/);
    const done = await c.wait(taskId, WAIT);
    expect(done).toEqual({ metadata: meta(taskId, 3), spec: normalized(spec), status: { phase: "succeeded", attempt: 1, exitCode: 0 } });
    expect(await c.get(taskId)).toEqual(done);
    expect(await readBoth(taskId)).toEqual(done);
    expect(await c.runs(taskId)).toEqual([runOf(1, "succeeded", { exitCode: 0 })]);
    expect(await c.logs(taskId)).toEqual([started(1), chunk(1, "stdout", 0, line), finished(1, 0)]);
  });

  test("a non-zero exit is failed with failOnNonZero, succeeded without; the exit code is kept", async () => {
    const strict = bashSpec("exit 3");
    const lenient = bashSpec("exit 3");
    lenient.kind.subprocess.failOnNonZero = false;
    const a = await c.submit(strict);
    const b = await c.submit(lenient);
    expect(await c.wait(a.taskId, WAIT)).toEqual({
      metadata: meta(a.taskId, 3),
      spec: normalized(strict),
      status: { phase: "failed", attempt: 1, exitCode: 3, error: "exit code 3" },
    });
    expect(await c.wait(b.taskId, WAIT)).toEqual({
      metadata: meta(b.taskId, 3),
      spec: normalized(lenient),
      status: { phase: "succeeded", attempt: 1, exitCode: 3 },
    });
    expect(await c.runs(a.taskId)).toEqual([runOf(1, "failed", { exitCode: 3, error: "exit code 3" })]);
  });

  test("a run over its timeout is stopped: phase timeout, the error names the limit", async () => {
    const spec = bashSpec('echo "pid=$$"; exec sleep 30', { timeout: 300, killGraceMs: 1000 });
    const { taskId } = await c.submit(spec);
    const done = await c.wait(taskId, WAIT);
    expect(done).toEqual({ metadata: meta(taskId, 3), spec: normalized(spec), status: { phase: "timeout", attempt: 1, error: "timed out after 300 ms" } });
    const [run] = await c.runs(taskId);
    expect(run).toEqual(runOf(1, "timeout", { error: "timed out after 300 ms" }));
    expect(run!.finishedAt! - run!.startedAt).toBeGreaterThanOrEqual(300);
    const pidLine = (await c.logs(taskId)).find((e) => e.type === "chunk");
    expect(processGone(Number(pidLine?.type === "chunk" ? pidLine.line.slice(4) : NaN))).toBe(true);
  });

  test("list: filters by slot and status, pages with limit/offset, total counts every match", async () => {
    const suite = crypto.randomUUID().slice(0, 8);
    const [slotA, slotB] = [uniqueSlot("la"), uniqueSlot("lb")];
    const labels = { suite };
    const plan: [string, string][] = [
      [slotA, "exit 0"],
      [slotA, "exit 1"],
      [slotA, "exit 0"],
      [slotB, "exit 0"],
      [slotB, "exit 1"],
    ];
    const ids: string[] = [];
    for (const [slot, body] of plan) ids.push((await c.submit(bashSpec(body, { slot, labels }))).taskId);
    const tasks: Task[] = [];
    for (const id of ids) tasks.push(await c.wait(id, WAIT));
    const [a1, a2, a3, b1, b2] = tasks as [Task, Task, Task, Task, Task];
    expect(tasks.map((t) => t.status.phase)).toEqual(["succeeded", "failed", "succeeded", "succeeded", "failed"]);

    expect(await c.list({ slot: slotA })).toEqual({ tasks: [a1, a2, a3], total: 3 });
    expect(await c.list({ slot: slotA, status: "failed" })).toEqual({ tasks: [a2], total: 1 });
    expect(await c.list({ slot: slotB, status: "succeeded" })).toEqual({ tasks: [b1], total: 1 });
    expect(await c.list({ slot: slotB, status: "running" })).toEqual({ tasks: [], total: 0 });
    expect(await c.list({ labels, status: "failed" })).toEqual({ tasks: [a2, b2], total: 2 });
    // Pages: total is every match, not the page size.
    expect(await c.list({ labels, limit: 2 })).toEqual({ tasks: [a1, a2], total: 5 });
    expect(await c.list({ labels, limit: 2, offset: 2 })).toEqual({ tasks: [a3, b1], total: 5 });
    expect(await c.list({ labels, limit: 2, offset: 4 })).toEqual({ tasks: [b2], total: 5 });
    expect(await c.list({ labels, limit: 2, offset: 9 })).toEqual({ tasks: [], total: 5 });
    expect(await c.list({ slot: uniqueSlot("none") })).toEqual({ tasks: [], total: 0 });
    // Over the other transport the page is the same.
    expect(await (c.transport === "rest" ? grpcClient : rest).list({ labels, limit: 2, offset: 2 })).toEqual({ tasks: [a3, b1], total: 5 });
  });

  test("runs across retries: oldest first, each failed, the task exhausted", async () => {
    const spec = bashSpec("echo try; exit 2", { restart: { type: "onFailure" }, backoff: FAST_BACKOFF, maxAttempts: 3 });
    const { taskId } = await c.submit(spec);
    const done = await c.wait(taskId, WAIT);
    expect(done).toEqual({
      metadata: meta(taskId, expect.any(Number)),
      spec: normalized(spec),
      status: { phase: "exhausted", attempt: 3, exitCode: 2, error: "exhausted: 3 of 3 attempts used (last: exit code 2)" },
    });
    const run = (attempt: number) => runOf(attempt, "failed", { exitCode: 2, error: "exit code 2" });
    const runs = await c.runs(taskId);
    expect(runs).toEqual([run(1), run(2), run(3)]);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.startedAt).toBeGreaterThanOrEqual(runs[i - 1]!.finishedAt!);
    expect(await readBoth(taskId)).toEqual(done);
  });

  test("logs: markers and chunks of two attempts in one stream, seq restarting per attempt", async () => {
    using dir = tempDir("tasklane-contract-");
    const counter = join(dir.path, "count");
    const body = [
      `n=$(( $(cat '${counter}' 2>/dev/null || echo 0) + 1 ))`,
      `echo "$n" > '${counter}'`,
      'echo "out $n"',
      'echo "err $n" >&2',
      'echo "more $n"',
      '[ "$n" -ge 2 ] || exit 1',
    ].join("\n");
    const { taskId } = await c.submit(bashSpec(body, { restart: { type: "onFailure" }, backoff: FAST_BACKOFF }));
    const live = c.logs(taskId); // subscribed while the task runs: replay, then live events
    const done = await c.wait(taskId, WAIT);
    expect(done.status).toEqual({ phase: "succeeded", attempt: 2, exitCode: 0 });
    const expected = [
      started(1),
      chunk(1, "stderr", 0, "err 1"),
      chunk(1, "stdout", 0, "out 1"),
      chunk(1, "stdout", 1, "more 1"),
      finished(1, 1),
      started(2),
      chunk(2, "stderr", 0, "err 2"),
      chunk(2, "stdout", 0, "out 2"),
      chunk(2, "stdout", 1, "more 2"),
      finished(2, 0),
    ];
    expect(normalizeLogs(await live)).toEqual(expected);
    const after = await c.logs(taskId); // the task is terminal: retained events, then the stream ends
    expect(normalizeLogs(after)).toEqual(expected);
    const runs = await c.runs(taskId);
    const markers: LogEvent[] = after.filter((e) => e.type !== "chunk");
    // The markers carry the times and exit codes of the run history.
    expect(markers).toEqual(
      runs.flatMap((r): LogEvent[] => [
        { type: "runStarted", attempt: r.attempt, startedAt: r.startedAt },
        { type: "runFinished", attempt: r.attempt, exitCode: r.exitCode, finishedAt: r.finishedAt ?? -1 },
      ]),
    );
  });

  test("log lines: UTF-8 kept, invalid bytes replaced, CRLF ends a line, long lines cut and marked, last line without newline", async () => {
    const body = [
      "printf 'h\\xc3\\xa9llo \\xe2\\x9c\\x93\\n'",
      "printf 'bad \\xff byte\\n'",
      "printf 'crlf\\r\\n'",
      "head -c 20000 /dev/zero | tr '\\0' x; echo",
      "printf 'no newline'",
    ].join("\n");
    const { taskId } = await c.submit(bashSpec(body));
    await c.wait(taskId, WAIT);
    const lines = (await c.logs(taskId)).flatMap((e) => (e.type === "chunk" ? [e.line] : []));
    expect(lines).toEqual(["héllo ✓", "bad \uFFFD byte", "crlf", `${"x".repeat(16_384)} …[truncated 3616 bytes]`, "no newline"]);
  });

  test("delete: idempotent (twice, unknown id), the task, its runs and logs are gone", async () => {
    const { taskId } = await c.submit(bashSpec("echo bye"));
    await c.wait(taskId, WAIT);
    await c.delete(taskId);
    await c.delete(taskId);
    await c.delete("tsk_01JR0000000000000000000000");
    expect(await readBoth(taskId)).toBeUndefined();
    const notFound = notFoundOf(taskId);
    expect(await failure(c.runs(taskId))).toEqual(notFound);
    expect(await failure(c.logs(taskId))).toEqual(notFound);
  });

  test("delete of a running task stops its process first", async () => {
    const spec = bashSpec('echo "pid=$$"; exec sleep 30', { killGraceMs: 1000 });
    const { taskId } = await c.submit(spec);
    const pid = Number((await waitForLine(agent, taskId, (l) => l.startsWith("pid="))).slice(4));
    await c.delete(taskId);
    expect(processGone(pid)).toBe(true);
    expect(await readBoth(taskId)).toBeUndefined();
    expect(await c.list({ slot: spec.slot })).toEqual({ tasks: [], total: 0 });
  });

  test("unknown task: get → undefined, runs and logs → TaskNotFound", async () => {
    const id = "tsk_01JR00000000000000000NOPE";
    expect(await c.get(id)).toBeUndefined();
    expect(await failure(c.runs(id))).toEqual(notFoundOf(id));
    expect(await failure(c.logs(id))).toEqual(notFoundOf(id));
  });
});

describe("how each transport says 'unknown task'", () => {
  test("REST: GET is a 404 TaskNotFound envelope", async () => {
    expect(await agent.json("GET", "/api/v1/tasks/tsk_nope")).toEqual({
      status: 404,
      body: { error: "TaskNotFound", message: "task tsk_nope not found" },
    });
  });

  test("gRPC: GetTaskStatus is OK with the task absent; ListTaskRuns is NOT_FOUND", async () => {
    const conn = grpcConnection(agent);
    try {
      const res = await unary(conn, SoltiApi.method.getTaskStatus, { taskId: "tsk_nope" });
      expect(res.task).toBeUndefined();
      const err = await unary(conn, SoltiApi.method.listTaskRuns, { taskId: "tsk_nope" }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "TaskNotFound", status: grpc.status.NOT_FOUND, message: "task tsk_nope not found" });
    } finally {
      conn.close();
    }
  });
});
