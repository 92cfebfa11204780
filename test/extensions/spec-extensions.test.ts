/**
 * Spec extensions end to end over REST and gRPC — maxAttempts, killGraceMs,
 * priority, labels — and the list extensions: label=k=v (repeatable, AND),
 * createdAfter / createdBefore (exclusive), order asc|desc.
 *
 * One agent with `--max-concurrent 1`, so priority decides who runs next,
 * and a strictly increasing clock, so creation times are distinct.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Task } from "../../src/tasks/model.ts";
import { processGone } from "../helpers/process.ts";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { blockSpec, makeFifo, release, tempDir, waitForLine } from "../helpers/task-control.ts";
import type { ContractClient } from "../contract/client.ts";
import { metaOf, runOf } from "../contract/matchers.ts";
import { bashSpec, completeSpec, normalized, TRANSPORTS, uniqueSlot } from "../contract/specs.ts";

// Real processes and servers: allow more than the 5 s default when run on its own.
setDefaultTimeout(30_000);

const WAIT = 20_000;
let agent: TestAgent;
let dir: ReturnType<typeof tempDir>;
beforeAll(async () => {
  let last = 0;
  agent = await startAgent({ args: ["--max-concurrent", "1"], clock: () => (last = Math.max(Date.now(), last + 1)) });
  dir = tempDir("tasklane-ext-");
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

const meta = metaOf;
const succeededRun = (attempt: number) => runOf(attempt, "succeeded", { exitCode: 0 });

describe.each(TRANSPORTS)("spec extensions over %s", (transport, factory) => {
  let c: ContractClient;
  beforeAll(() => {
    c = factory(agent);
  });
  afterAll(() => c?.[Symbol.dispose]());

  test("maxAttempts caps an always-restarting task: exhausted after N successful attempts", async () => {
    const spec = bashSpec("echo tick", { restart: { type: "always", intervalMs: 0 }, maxAttempts: 3 });
    const { taskId } = await c.submit(spec);
    expect(await c.wait(taskId, WAIT)).toEqual({
      metadata: meta(taskId, expect.any(Number)),
      spec: normalized(spec),
      status: { phase: "exhausted", attempt: 3, exitCode: 0, error: "exhausted: 3 of 3 attempts used (last: succeeded)" },
    });
    expect(await c.runs(taskId)).toEqual([succeededRun(1), succeededRun(2), succeededRun(3)]);
  });

  test.each([
    [300, 280, 1800],
    [0, 0, 280],
  ])("killGraceMs %d: a process ignoring SIGTERM is killed after the task's grace, not the agent's", async (grace, min, max) => {
    const spec = bashSpec('trap "" TERM; echo "pid=$$"; exec sleep 30', { killGraceMs: grace });
    const { taskId } = await c.submit(spec);
    const pid = Number((await waitForLine(agent, taskId, (l) => l.startsWith("pid="))).slice(4));
    const t0 = performance.now();
    const canceled = await c.cancel(taskId);
    const elapsed = performance.now() - t0;
    expect(processGone(pid)).toBe(true);
    expect(canceled).toEqual({ metadata: meta(taskId, 3), spec: normalized(spec), status: { phase: "canceled", attempt: 1, error: "canceled" } });
    expect(canceled.spec.killGraceMs).toBe(grace);
    expect(elapsed).toBeGreaterThanOrEqual(min);
    expect(elapsed).toBeLessThan(max);
    expect(await c.runs(taskId)).toEqual([runOf(1, "canceled", { error: "canceled" })]);
  });

  test("priority: when capacity frees, higher priority runs first, then submission order", async () => {
    const out = join(dir.path, `order-${transport}`);
    const fifo = makeFifo(dir.path, `prio-${transport}`);
    const blocker = await c.submit(completeSpec(blockSpec(fifo, "blocker")));
    expect((await c.get(blocker.taskId))?.status.phase).toBe("running"); // holds the only capacity
    const plan: [string, number | undefined][] = [
      ["low", 1],
      ["default", undefined],
      ["high", 9],
      ["high-2", 9],
      ["zero", 0],
    ];
    const submitted: { name: string; id: string; spec: Record<string, unknown> }[] = [];
    for (const [name, priority] of plan) {
      const spec = bashSpec(`echo ${name} >> '${out}'`, priority === undefined ? {} : { priority });
      submitted.push({ name, id: (await c.submit(spec)).taskId, spec });
    }
    for (const s of submitted) {
      expect(await c.get(s.id)).toEqual({ metadata: meta(s.id, 1), spec: normalized(s.spec), status: { phase: "pending", attempt: 0 } });
    }
    await release(fifo);
    const done: Task[] = [];
    for (const s of submitted) done.push(await c.wait(s.id, WAIT));
    expect(done.map((t) => t.status.phase)).toEqual(submitted.map(() => "succeeded"));
    expect(readFileSync(out, "utf8").trim().split("\n")).toEqual(["high", "high-2", "default", "low", "zero"]);
  });

  test("labels are stored and returned; label filters are ANDed; created bounds are exclusive; order asc|desc", async () => {
    const suite = crypto.randomUUID().slice(0, 8);
    const plan = [
      { team: "edge", env: "prod" },
      { team: "edge", env: "dev" },
      { team: "core", env: "prod" },
    ];
    const tasks: Task[] = [];
    for (const labels of plan) {
      const spec = bashSpec("true", { labels: { suite, ...labels } });
      const { taskId } = await c.submit(spec);
      const t = await c.wait(taskId, WAIT);
      expect(t.spec).toEqual(normalized(spec));
      tasks.push(t);
    }
    const [t1, t2, t3] = tasks as [Task, Task, Task];
    expect(t1.metadata.createdAt).toBeLessThan(t2.metadata.createdAt);
    expect(t2.metadata.createdAt).toBeLessThan(t3.metadata.createdAt);

    const q = (more: Parameters<ContractClient["list"]>[0] = {}) => c.list({ ...more, labels: { suite, ...more.labels } });
    expect(await q()).toEqual({ tasks: [t1, t2, t3], total: 3 });
    expect(await q({ labels: { team: "edge" } })).toEqual({ tasks: [t1, t2], total: 2 });
    expect(await q({ labels: { team: "edge", env: "prod" } })).toEqual({ tasks: [t1], total: 1 });
    expect(await q({ labels: { env: "prod" } })).toEqual({ tasks: [t1, t3], total: 2 });
    expect(await q({ labels: { team: "nobody" } })).toEqual({ tasks: [], total: 0 });

    expect(await q({ createdAfter: t1.metadata.createdAt })).toEqual({ tasks: [t2, t3], total: 2 });
    expect(await q({ createdBefore: t3.metadata.createdAt })).toEqual({ tasks: [t1, t2], total: 2 });
    expect(await q({ createdAfter: t1.metadata.createdAt, createdBefore: t3.metadata.createdAt })).toEqual({ tasks: [t2], total: 1 });
    expect(await q({ createdAfter: t3.metadata.createdAt })).toEqual({ tasks: [], total: 0 });

    expect(await q({ order: "asc" })).toEqual({ tasks: [t1, t2, t3], total: 3 });
    expect(await q({ order: "desc" })).toEqual({ tasks: [t3, t2, t1], total: 3 });
    expect(await q({ order: "desc", limit: 2 })).toEqual({ tasks: [t3, t2], total: 3 });
    expect(await q({ order: "desc", limit: 2, offset: 2 })).toEqual({ tasks: [t1], total: 3 });
    expect(await q({ order: "desc", labels: { env: "prod" }, createdBefore: t3.metadata.createdAt + 1 })).toEqual({ tasks: [t3, t1], total: 2 });
  });

  test("a slot filter and a label filter combine", async () => {
    const slot = uniqueSlot("lbl");
    const a = await c.submit(bashSpec("true", { slot, labels: { k: "v" } }));
    const b = await c.submit(bashSpec("true", { slot, labels: { k: "w" } }));
    const [ta] = [await c.wait(a.taskId, WAIT), await c.wait(b.taskId, WAIT)];
    expect(await c.list({ slot, labels: { k: "v" } })).toEqual({ tasks: [ta], total: 1 });
  });
});
