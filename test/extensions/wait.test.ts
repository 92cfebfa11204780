/**
 * Wait and submit-and-wait over REST and gRPC: a wait answers as soon as the
 * task is terminal (measured against the run's finishedAt), answers the
 * current task at its timeout, and submit-and-wait returns the final task,
 * its runs and the last 100 lines of stdout and stderr.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { blockSpec, makeFifo, release, tempDir } from "../helpers/task-control.ts";
import { failure, type ContractClient } from "../contract/client.ts";
import { metaOf, notFound, runOf } from "../contract/matchers.ts";
import { bashSpec, completeSpec, normalized, TRANSPORTS } from "../contract/specs.ts";

// Real processes and servers: allow more than the 5 s default when run on its own.
setDefaultTimeout(30_000);

const WAIT = 20_000;
let agent: TestAgent;
let dir: ReturnType<typeof tempDir>;
beforeAll(async () => {
  agent = await startAgent();
  dir = tempDir("tasklane-wait-");
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

const meta = metaOf;

describe.each(TRANSPORTS)("wait over %s", (transport, factory) => {
  let c: ContractClient;
  beforeAll(() => {
    c = factory(agent);
  });
  afterAll(() => c?.[Symbol.dispose]());

  test("a wait answers within a few ms of the run's end", async () => {
    const fifo = makeFifo(dir.path, `w-${transport}`);
    const spec = completeSpec(blockSpec(fifo, "waited"));
    const { taskId } = await c.submit(spec);
    let settled = false;
    const waited = c.wait(taskId, WAIT).then((task) => {
      settled = true;
      return { task, at: Date.now() };
    });
    // One more round trip on the same transport: the wait is in place and still waiting.
    expect((await c.get(taskId))?.status.phase).toMatch(/^(pending|running)$/);
    expect(settled).toBe(false);
    await release(fifo);
    const { task, at } = await waited;
    expect(task).toEqual({ metadata: meta(taskId, 3), spec: normalized(spec), status: { phase: "succeeded", attempt: 1, exitCode: 0 } });
    const [run] = await c.runs(taskId);
    const gap = at - run!.finishedAt!;
    console.log(`wait over ${transport}: answer arrived ${gap} ms after the run's finishedAt`);
    expect(gap).toBeGreaterThanOrEqual(0);
    expect(gap).toBeLessThan(50);
  });

  test("at its timeout a wait answers with the task as it is (still running)", async () => {
    const fifo = makeFifo(dir.path, `t-${transport}`);
    const spec = completeSpec(blockSpec(fifo, "slow"));
    const { taskId } = await c.submit(spec);
    const t0 = performance.now();
    const task = await c.wait(taskId, 100);
    const elapsed = performance.now() - t0;
    expect(task).toEqual({ metadata: meta(taskId, 2), spec: normalized(spec), status: { phase: "running", attempt: 1 } });
    expect(elapsed).toBeGreaterThanOrEqual(95);
    expect(elapsed).toBeLessThan(5000);
    await release(fifo);
    expect((await c.wait(taskId, WAIT)).status.phase).toBe("succeeded");
  });

  test("a wait on a task deleted meanwhile answers its last state (stopped by the delete); then it is gone", async () => {
    const fifo = makeFifo(dir.path, `d-${transport}`);
    const spec = completeSpec(blockSpec(fifo, "doomed"));
    const { taskId } = await c.submit(spec);
    const waited = c.wait(taskId, WAIT);
    expect((await c.get(taskId))?.status.phase).toMatch(/^(pending|running)$/);
    await c.delete(taskId);
    expect(await waited).toEqual({ metadata: meta(taskId, 3), spec: normalized(spec), status: { phase: "canceled", attempt: 1, error: "deleted" } });
    expect(await failure(c.wait(taskId, WAIT))).toEqual(notFound(taskId));
  });

  test("a wait longer than 10 minutes is InvalidRequest", async () => {
    const { taskId: other } = await c.submit(bashSpec("true"));
    expect(await failure(c.wait(other, 600_001))).toEqual({ code: "InvalidRequest", message: "timeoutMs: must be an integer 0..600000, got 600001" });
  });

  test("a submit-and-wait with a bad timeout is InvalidRequest and creates no task", async () => {
    const spec = bashSpec("true");
    expect(await failure(c.run(spec, 600_001))).toEqual({ code: "InvalidRequest", message: "timeoutMs: must be an integer 0..600000, got 600001" });
    expect(await c.list({ slot: spec.slot as string })).toEqual({ tasks: [], total: 0 });
  });

  test("submit-and-wait: the final task, its runs and the last 100 lines of stdout and stderr", async () => {
    const spec = bashSpec('for i in $(seq 1 150); do echo "out $i"; echo "err $i" >&2; done; exit 5');
    const result = await c.run(spec, WAIT);
    const id = result.task.metadata.id;
    const range = (prefix: string) => Array.from({ length: 100 }, (_, i) => `${prefix} ${i + 51}`);
    expect(result).toEqual({
      task: { metadata: meta(id, 3), spec: normalized(spec), status: { phase: "failed", attempt: 1, exitCode: 5, error: "exit code 5" } },
      runs: [runOf(1, "failed", { exitCode: 5, error: "exit code 5" })],
      output: { stdout: range("out"), stderr: range("err") },
    });
    expect(await c.get(id)).toEqual(result.task);
  });

  test("submit-and-wait of a short task: everything it printed", async () => {
    const spec = bashSpec("echo one; echo two; echo warn >&2");
    const result = await c.run(spec, WAIT);
    expect(result.task.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
    expect(result.output).toEqual({ stdout: ["one", "two"], stderr: ["warn"] });
  });

  test("submit-and-wait that times out answers the running task and what it printed so far", async () => {
    const fifo = makeFifo(dir.path, `r-${transport}`);
    const spec = completeSpec(blockSpec(fifo, "long"));
    const result = await c.run(spec, 100);
    expect(result.task.status).toEqual({ phase: "running", attempt: 1 });
    expect(result.runs).toEqual([{ attempt: 1, phase: "running", startedAt: expect.any(Number) }]);
    // What it printed so far: a prefix of its first two lines.
    const first = [expect.stringMatching(/^pid=\d+$/), "ready long"];
    expect(result.output).toEqual({ stdout: first.slice(0, result.output.stdout.length), stderr: [] });
    await release(fifo);
    const done = await c.wait(result.task.metadata.id, WAIT);
    expect(done.status.phase).toBe("succeeded");
  });
});
