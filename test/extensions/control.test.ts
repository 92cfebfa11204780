/**
 * Control extensions over REST and gRPC (`tasklane.v1.AgentService`): hold
 * then start, restart of a succeeded and of an exhausted task, cancel while
 * running / in backoff / queued, cancel of a terminal task.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LogEvent, Task } from "../../src/tasks/model.ts";
import { processGone } from "../helpers/process.ts";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { blockSpec, makeFifo, release, tempDir, waitForLine } from "../helpers/task-control.ts";
import { failure, type ContractClient, type WatchItem } from "../contract/client.ts";
import { metaOf, notFound as notFoundOf, runOf } from "../contract/matchers.ts";
import { bashSpec, completeSpec, FAST_BACKOFF, normalized, TRANSPORTS, uniqueSlot } from "../contract/specs.ts";

// Real processes and servers: allow more than the 5 s default when run on its own.
setDefaultTimeout(30_000);

const WAIT = 20_000;
let agent: TestAgent;
let dir: ReturnType<typeof tempDir>;
beforeAll(async () => {
  agent = await startAgent();
  dir = tempDir("tasklane-control-");
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

const meta = metaOf;
const run = runOf;

/** Watch until the task reaches a state `match` accepts (the watch replays retained changes first). */
async function until(c: ContractClient, slot: string, id: string, match: (t: Task) => boolean): Promise<Task> {
  using w = c.watch({ slot });
  for await (const item of w as AsyncIterable<WatchItem>) {
    if (item.type === "task" && item.task.metadata.id === id && match(item.task)) return item.task;
  }
  throw new Error(`watch of ${id} ended before the state was reached`);
}

describe.each(TRANSPORTS)("control over %s", (_transport, factory) => {
  let c: ContractClient;
  beforeAll(() => {
    c = factory(agent);
  });
  afterAll(() => c?.[Symbol.dispose]());

  test("hold, then start: nothing runs until started; start clears hold and is idempotent", async () => {
    const spec = bashSpec("echo released", { hold: true });
    const { taskId } = await c.submit(spec);
    expect(await c.get(taskId)).toEqual({ metadata: meta(taskId, 1), spec: normalized(spec), status: { phase: "pending", attempt: 0 } });
    expect(await c.runs(taskId)).toEqual([]);

    const { hold: _hold, ...released } = spec;
    const started = await c.start(taskId);
    expect(started).toEqual({ metadata: meta(taskId, 3), spec: normalized(released), status: { phase: "running", attempt: 1 } });
    const done = await c.wait(taskId, WAIT);
    expect(done).toEqual({ metadata: meta(taskId, 4), spec: normalized(released), status: { phase: "succeeded", attempt: 1, exitCode: 0 } });
    expect(await c.start(taskId)).toEqual(done);
    expect(await c.runs(taskId)).toEqual([run(1, "succeeded", { exitCode: 0 })]);
  });

  test("restart of a succeeded task: attempt 2, history and logs kept", async () => {
    const spec = bashSpec("echo again");
    const { taskId } = await c.submit(spec);
    const first = await c.wait(taskId, WAIT);
    expect(first.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
    const restarted = await c.restart(taskId);
    expect(restarted).toEqual({ metadata: meta(taskId, 5), spec: normalized(spec), status: { phase: "running", attempt: 2 } });
    expect(await c.wait(taskId, WAIT)).toEqual({ metadata: meta(taskId, 6), spec: normalized(spec), status: { phase: "succeeded", attempt: 2, exitCode: 0 } });
    expect(await c.runs(taskId)).toEqual([run(1, "succeeded", { exitCode: 0 }), run(2, "succeeded", { exitCode: 0 })]);
    const lines = (await c.logs(taskId)).flatMap((e: LogEvent) => (e.type === "chunk" ? [`${e.attempt}:${e.line}`] : []));
    expect(lines).toEqual(["1:again", "2:again"]);
  });

  test("restart of an exhausted task: attempt N+1, history kept", async () => {
    const mark = join(dir.path, `mark-${crypto.randomUUID()}`);
    const spec = bashSpec(`[ -e '${mark}' ] || exit 4; echo recovered`, { restart: { type: "onFailure" }, backoff: FAST_BACKOFF, maxAttempts: 2 });
    const { taskId } = await c.submit(spec);
    expect((await c.wait(taskId, WAIT)).status).toEqual({
      phase: "exhausted",
      attempt: 2,
      exitCode: 4,
      error: "exhausted: 2 of 2 attempts used (last: exit code 4)",
    });
    writeFileSync(mark, "");
    const restarted = await c.restart(taskId);
    expect(restarted.status).toEqual({ phase: "running", attempt: 3 });
    expect((await c.wait(taskId, WAIT)).status).toEqual({ phase: "succeeded", attempt: 3, exitCode: 0 });
    expect(await c.runs(taskId)).toEqual([
      run(1, "failed", { exitCode: 4, error: "exit code 4" }),
      run(2, "failed", { exitCode: 4, error: "exit code 4" }),
      run(3, "succeeded", { exitCode: 0 }),
    ]);
  });

  test("restart of an exhausted task gives it a fresh budget of maxAttempts, counted from the restart", async () => {
    const spec = bashSpec("exit 4", { restart: { type: "onFailure" }, backoff: FAST_BACKOFF, maxAttempts: 2 });
    const { taskId } = await c.submit(spec);
    expect((await c.wait(taskId, WAIT)).status.error).toBe("exhausted: 2 of 2 attempts used (last: exit code 4)");
    await c.restart(taskId);
    expect((await c.wait(taskId, WAIT)).status).toEqual({
      phase: "exhausted",
      attempt: 4,
      exitCode: 4,
      error: "exhausted: 2 of 2 attempts used since the restart (last: exit code 4)",
    });
    // The runs show no internal marks.
    expect(await c.runs(taskId)).toEqual([1, 2, 3, 4].map((n) => run(n, "failed", { exitCode: 4, error: "exit code 4" })));
  });

  test("restart of a task that is not terminal is InvalidRequest", async () => {
    const { taskId } = await c.submit(bashSpec("true", { hold: true }));
    expect(await failure(c.restart(taskId))).toEqual({
      code: "InvalidRequest",
      message: `task ${taskId} is not terminal; only a terminal task can be restarted`,
    });
    await c.delete(taskId);
  });

  test("cancel during a run: answers once the process is gone; phase canceled; runs and logs kept", async () => {
    const spec = bashSpec('echo "pid=$$"; exec sleep 30', { killGraceMs: 2000 });
    const { taskId } = await c.submit(spec);
    const pid = Number((await waitForLine(agent, taskId, (l) => l.startsWith("pid="))).slice(4));
    const canceled = await c.cancel(taskId);
    expect(processGone(pid)).toBe(true);
    expect(canceled).toEqual({ metadata: meta(taskId, 3), spec: normalized(spec), status: { phase: "canceled", attempt: 1, error: "canceled" } });
    expect(await c.get(taskId)).toEqual(canceled);
    expect(await c.runs(taskId)).toEqual([run(1, "canceled", { error: "canceled" })]);
    expect(await c.logs(taskId)).toEqual([
      { type: "runStarted", attempt: 1, startedAt: expect.any(Number) },
      { type: "chunk", attempt: 1, stream: "stdout", seq: 0, ts: expect.any(Number), line: `pid=${pid}` },
      { type: "runFinished", attempt: 1, finishedAt: expect.any(Number) }, // killed by a signal: no exit code
    ]);
  });

  test("cancel during backoff: no further attempt; the failed run is kept", async () => {
    const slot = uniqueSlot("bo");
    const spec = bashSpec("exit 1", { slot, restart: { type: "onFailure" }, backoff: { jitter: "none", firstMs: 600_000, maxMs: 600_000, factor: 1 } });
    const { taskId } = await c.submit(spec);
    await until(c, slot, taskId, (t) => t.status.phase === "pending" && t.status.attempt === 1);
    const canceled = await c.cancel(taskId);
    expect(canceled).toEqual({
      metadata: meta(taskId, 4),
      spec: normalized(spec),
      status: { phase: "canceled", attempt: 1, exitCode: 1, error: "canceled" },
    });
    expect(await c.wait(taskId, WAIT)).toEqual(canceled);
    expect(await c.runs(taskId)).toEqual([run(1, "failed", { exitCode: 1, error: "exit code 1" })]);
  });

  test("cancel while queued behind a busy slot: canceled without a run; the slot goes on", async () => {
    const fifo = makeFifo(dir.path, `q-${crypto.randomUUID().slice(0, 8)}`);
    const first = blockSpec(fifo, "first");
    const slot = first.slot as string;
    const a = await c.submit(completeSpec(first));
    const queuedSpec = bashSpec("echo never", { slot });
    const b = await c.submit(queuedSpec);
    const thirdSpec = bashSpec("echo third", { slot });
    const third = await c.submit(thirdSpec);
    expect(await c.get(b.taskId)).toEqual({ metadata: meta(b.taskId, 1), spec: normalized(queuedSpec), status: { phase: "pending", attempt: 0 } });
    expect(await c.cancel(b.taskId)).toEqual({
      metadata: meta(b.taskId, 2),
      spec: normalized(queuedSpec),
      status: { phase: "canceled", attempt: 0, error: "canceled" },
    });
    expect(await c.runs(b.taskId)).toEqual([]);
    await release(fifo);
    expect((await c.wait(a.taskId, WAIT)).status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
    expect((await c.wait(third.taskId, WAIT)).status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
    expect((await c.get(b.taskId))?.status).toEqual({ phase: "canceled", attempt: 0, error: "canceled" });
  });

  test("cancel of a terminal task is a no-op returning it", async () => {
    const { taskId } = await c.submit(bashSpec("exit 0"));
    const done = await c.wait(taskId, WAIT);
    expect(await c.cancel(taskId)).toEqual(done);
    expect(await c.get(taskId)).toEqual(done);
  });

  test("unknown ids: cancel, start, restart and wait are TaskNotFound", async () => {
    const id = "tsk_01JR00000000000000000NOPE";
    const notFound = notFoundOf(id);
    expect(await failure(c.cancel(id))).toEqual(notFound);
    expect(await failure(c.start(id))).toEqual(notFound);
    expect(await failure(c.restart(id))).toEqual(notFound);
    expect(await failure(c.wait(id, 100))).toEqual(notFound);
  });
});
