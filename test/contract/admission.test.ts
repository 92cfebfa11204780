/**
 * Contract suite, admission per slot (CONTRACT §6) over REST and gRPC:
 * queue (FIFO, bounded — `--max-queue 2` here: full → Unavailable, nothing stored), dropIfRunning
 * (recorded as canceled), replace (the running and the queued tasks are
 * canceled, the new one runs).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { blockSpec, makeFifo, release, tempDir } from "../helpers/task-control.ts";
import { failure, type ContractClient } from "./client.ts";
import { metaOf } from "./matchers.ts";
import { bashSpec, completeSpec, normalized, TRANSPORTS } from "./specs.ts";

// Real processes and servers: allow more than the 5 s default when run on its own.
setDefaultTimeout(30_000);

const WAIT = 20_000;
let agent: TestAgent;
let dir: ReturnType<typeof tempDir>;
beforeAll(async () => {
  agent = await startAgent({ args: ["--max-queue", "2"] });
  dir = tempDir("tasklane-admission-");
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

describe.each(TRANSPORTS)("admission over %s", (transport, factory) => {
  let c: ContractClient;
  beforeAll(() => {
    c = factory(agent);
  });
  afterAll(() => c?.[Symbol.dispose]());

  test("queue, queue full, dropIfRunning, replace — in one slot", async () => {
    const fifo = makeFifo(dir.path, `adm-${transport}`);
    const blockerSpec = completeSpec(blockSpec(fifo, "blocker"));
    const slot = blockerSpec.slot as string;
    const blocker = await c.submit(blockerSpec);
    expect((await c.get(blocker.taskId))?.status).toEqual({ phase: "running", attempt: 1 });

    // queue: waits behind the running task.
    const queuedSpec = bashSpec("echo queued", { slot });
    const queued = await c.submit(queuedSpec);
    expect(await c.get(queued.taskId)).toEqual({ metadata: metaOf(queued.taskId, 1), spec: normalized(queuedSpec), status: { phase: "pending", attempt: 0 } });
    const queued2 = await c.submit(bashSpec("echo queued too", { slot }));

    // The slot's queue holds two: the next queued submit is Unavailable and stores nothing.
    expect(await failure(c.submit(bashSpec("echo overflow", { slot })))).toEqual({
      code: "Unavailable",
      message: `queue of slot ${slot} is full (2 tasks)`,
    });
    expect((await c.list({ slot })).total).toBe(3);

    // dropIfRunning: accepted, recorded as canceled, never run.
    const dropSpec = bashSpec("echo dropped", { slot, admission: "dropIfRunning" });
    const dropped = await c.submit(dropSpec);
    expect(await c.get(dropped.taskId)).toEqual({
      metadata: metaOf(dropped.taskId, 2),
      spec: normalized(dropSpec),
      status: { phase: "canceled", attempt: 0, error: `dropped: slot ${slot} busy with ${blocker.taskId}` },
    });
    expect(await c.runs(dropped.taskId)).toEqual([]);

    // replace: the running task and the queued one are canceled, the new one runs.
    const replaceSpec = bashSpec("echo replacement", { slot, admission: "replace" });
    const replacing = await c.submit(replaceSpec);
    const done = await c.wait(replacing.taskId, WAIT);
    expect(done).toEqual({ metadata: metaOf(replacing.taskId, 3), spec: normalized(replaceSpec), status: { phase: "succeeded", attempt: 1, exitCode: 0 } });
    const reason = `replaced by ${replacing.taskId}`;
    expect((await c.wait(blocker.taskId, WAIT)).status).toEqual({ phase: "canceled", attempt: 1, error: reason });
    expect((await c.get(queued.taskId))?.status).toEqual({ phase: "canceled", attempt: 0, error: reason });
    expect((await c.get(queued2.taskId))?.status).toEqual({ phase: "canceled", attempt: 0, error: reason });
    expect((await c.list({ slot })).tasks.map((t) => [t.metadata.id, t.status.phase])).toEqual([
      [blocker.taskId, "canceled"],
      [queued.taskId, "canceled"],
      [queued2.taskId, "canceled"],
      [dropped.taskId, "canceled"],
      [replacing.taskId, "succeeded"],
    ]);
    // The replaced run finished before the new one started.
    const [old] = await c.runs(blocker.taskId);
    const [fresh] = await c.runs(replacing.taskId);
    expect(old).toEqual({ attempt: 1, phase: "canceled", startedAt: expect.any(Number), finishedAt: expect.any(Number), error: reason });
    expect(fresh!.startedAt).toBeGreaterThanOrEqual(old!.finishedAt!);
  });

  test("queue is FIFO per slot", async () => {
    const fifo = makeFifo(dir.path, `fifo-${transport}`);
    const blockerSpec = completeSpec(blockSpec(fifo, "first"));
    const slot = blockerSpec.slot as string;
    await c.submit(blockerSpec);
    const second = await c.submit(bashSpec("echo second", { slot }));
    const third = await c.submit(bashSpec("echo third", { slot }));
    await release(fifo);
    const [t2, t3] = [await c.wait(second.taskId, WAIT), await c.wait(third.taskId, WAIT)];
    expect([t2.status.phase, t3.status.phase]).toEqual(["succeeded", "succeeded"]);
    const [r2] = await c.runs(second.taskId);
    const [r3] = await c.runs(third.taskId);
    expect(r3!.startedAt).toBeGreaterThanOrEqual(r2!.finishedAt!);
  });
});
