/**
 * The domain service without a transport: wait, submit-and-wait, visibility
 * and permissions per principal, watch filters, log subscriptions, close.
 * Built from the real pieces (memory store, log hub, supervisor) and real
 * processes.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { AgentError } from "../../src/errors.ts";
import type { Caller, LogRecord, Task } from "../../src/tasks/model.ts";
import type { WatchRecord } from "../../src/tasks/task-service.ts";
import { createServiceRig as rig, type ServiceRig as Rig } from "../helpers/service-rig.ts";

const ADMIN: Caller = { principal: { name: "root", role: "admin" } };
const ALICE: Caller = { principal: { name: "alice", role: "user" } };
const BOB: Caller = { principal: { name: "bob", role: "user" } };
const VIEWER: Caller = { principal: { name: "alice", role: "viewer" } };
const ANON: Caller = {};

const cmd = (command: string, args: string[] = [], extra: Record<string, unknown> = {}) => ({
  slot: `s-${crypto.randomUUID().slice(0, 8)}`,
  kind: { subprocess: { mode: { command: { command, args } } } },
  ...extra,
});
const bash = (script: string, extra: Record<string, unknown> = {}) =>
  cmd("bash", ["-c", script], extra);

/** Expect `fn` to throw an AgentError with this code and message. */
async function rejects(fn: () => unknown, code: AgentError["code"], message: string | RegExp): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(AgentError);
  expect((caught as AgentError).code).toBe(code);
  if (typeof message === "string") expect((caught as AgentError).message).toBe(message);
  else expect((caught as AgentError).message).toMatch(message);
}

let r: Rig;
beforeEach(() => {
  r = rig();
});
afterEach(async () => {
  await r.close();
});

describe("submit and wait", () => {
  test("submit answers id, admission and the stored task; wait resolves when terminal", async () => {
    const { taskId, admission, task } = await r.service.submit(cmd("echo", ["hi"]), ANON);
    expect(taskId).toMatch(/^tsk_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(admission).toBe("started");
    expect(task.metadata.id).toBe(taskId);
    expect(task.status).toEqual({ phase: "running", attempt: 1 });
    const done = await r.service.wait(taskId, 10_000, ANON);
    expect(done.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
    expect(r.service.get(taskId, ANON)).toEqual(done);
  });

  test("an invalid spec throws InvalidRequest and stores nothing", async () => {
    await rejects(() => r.service.submit(cmd("", []), ANON), "InvalidRequest", 'spec.kind.subprocess.mode.command.command: must not be empty or blank, got ""');
    expect(r.service.list({ order: "asc", limit: 100, offset: 0 }, ANON)).toEqual({ tasks: [], total: 0 });
  });

  test("wait answers the current state when the time is up", async () => {
    const { taskId } = await r.service.submit(cmd("true", [], { hold: true }), ANON);
    const t = await r.service.wait(taskId, 20, ANON);
    expect(t.status).toEqual({ phase: "pending", attempt: 0 });
    expect((await r.service.wait(taskId, 0, ANON)).status.phase).toBe("pending");
  });

  test("wait answers the current state when the caller aborts", async () => {
    const { taskId } = await r.service.submit(cmd("true", [], { hold: true }), ANON);
    const ac = new AbortController();
    const p = r.service.wait(taskId, 60_000, ANON, ac.signal);
    ac.abort();
    expect((await p).status.phase).toBe("pending");
  });

  test("wait with a signal aborted before it starts (a wait opened during shutdown) answers at once", async () => {
    const { taskId } = await r.service.submit(cmd("true", [], { hold: true }), ANON);
    const started = performance.now();
    const t = await r.service.wait(taskId, 60_000, ANON, AbortSignal.abort());
    expect(t.status.phase).toBe("pending");
    expect(performance.now() - started).toBeLessThan(1_000); // not held until the 60 s timeout
  });

  test("wait on a task deleted meanwhile answers its final state (canceled by the delete)", async () => {
    const { taskId } = await r.service.submit(cmd("true", [], { hold: true }), ANON);
    const p = r.service.wait(taskId, 60_000, ANON);
    await r.service.delete(taskId, ANON);
    expect((await p).status).toEqual({ phase: "canceled", attempt: 0, error: "deleted" });
    await rejects(() => r.service.wait(taskId, 10, ANON), "TaskNotFound", `task ${taskId} not found`);
  });

  test("wait checks its timeout and the id", async () => {
    const { taskId } = await r.service.submit(cmd("true", [], { hold: true }), ANON);
    await rejects(() => r.service.wait(taskId, 600_001, ANON), "InvalidRequest", "timeoutMs: must be an integer 0..600000, got 600001");
    await rejects(() => r.service.wait(taskId, -1, ANON), "InvalidRequest", "timeoutMs: must be an integer 0..600000, got -1");
    await rejects(() => r.service.wait("tsk_nope", 10, ANON), "TaskNotFound", "task tsk_nope not found");
  });

  test("close() releases pending waiters with the current state", async () => {
    const { taskId } = await r.service.submit(cmd("true", [], { hold: true }), ANON);
    const p = r.service.wait(taskId, 60_000, ANON);
    r.service.close();
    expect((await p).status.phase).toBe("pending");
  });

  test("run: submit and wait with runs and the tails of both streams", async () => {
    await r.close();
    r = rig({ outputTail: 2 });
    const out = await r.service.run(bash("for i in 1 2 3 4; do echo out$i; echo err$i >&2; done; exit 4"), ANON, 10_000);
    expect(out).toEqual({
      task: {
        metadata: { id: expect.any(String), resourceVersion: 3, createdAt: expect.any(Number), updatedAt: expect.any(Number) },
        spec: expect.any(Object),
        status: { phase: "failed", attempt: 1, exitCode: 4, error: "exit code 4" },
      },
      runs: [{ attempt: 1, phase: "failed", startedAt: expect.any(Number), finishedAt: expect.any(Number), exitCode: 4, error: "exit code 4" }],
      output: { stdout: ["out3", "out4"], stderr: ["err3", "err4"] },
    });
  });
});

describe("principals", () => {
  test("the owner is recorded; other users do not see the task, admins do", async () => {
    const { taskId } = await r.service.submit(cmd("true", [], { hold: true, slot: "owned" }), ALICE);
    expect(r.service.get(taskId, ALICE).metadata.owner).toBe("alice");
    expect(r.service.get(taskId, ADMIN).metadata.owner).toBe("alice");
    expect(r.service.get(taskId, VIEWER).metadata.id).toBe(taskId);
    expect(r.service.find(taskId, BOB)).toBeUndefined();
    await rejects(() => r.service.get(taskId, BOB), "TaskNotFound", `task ${taskId} not found`);
    await rejects(() => r.service.runs(taskId, BOB), "TaskNotFound", `task ${taskId} not found`);
    await rejects(() => r.service.logs(taskId, { follow: false }, BOB), "TaskNotFound", `task ${taskId} not found`);
    await rejects(() => r.service.cancel(taskId, BOB), "TaskNotFound", `task ${taskId} not found`);
    await rejects(() => r.service.start(taskId, BOB), "TaskNotFound", `task ${taskId} not found`);
    await rejects(() => r.service.wait(taskId, 10, BOB), "TaskNotFound", `task ${taskId} not found`);
    const q = { slot: "owned", order: "asc" as const, limit: 100, offset: 0 };
    expect(r.service.list(q, BOB)).toEqual({ tasks: [], total: 0 });
    expect(r.service.list(q, ALICE).total).toBe(1);
    expect(r.service.list(q, ADMIN).total).toBe(1);
    // bob's delete is a no-op (the task looks missing to him)
    await r.service.delete(taskId, BOB);
    expect(r.service.get(taskId, ALICE).metadata.id).toBe(taskId);
  });

  test("getJson is get as JSON text, with the same visibility, for an active and a finished task", async () => {
    const { taskId } = await r.service.submit(cmd("true", [], { hold: true, slot: "json" }), ALICE);
    expect(JSON.parse(r.service.getJson(taskId, ALICE))).toEqual(r.service.get(taskId, ALICE));
    expect(JSON.parse(r.service.getJson(taskId, ADMIN)).metadata.owner).toBe("alice");
    await rejects(() => r.service.getJson(taskId, BOB), "TaskNotFound", `task ${taskId} not found`);
    await r.service.start(taskId, ALICE);
    const done = await r.service.wait(taskId, 10_000, ALICE);
    expect(done.status.phase).toBe("succeeded");
    expect(r.service.getJson(taskId, ALICE)).toBe(JSON.stringify(done));
    expect(JSON.parse(r.service.getJson(taskId, VIEWER))).toEqual(done);
    await rejects(() => r.service.getJson(taskId, BOB), "TaskNotFound", `task ${taskId} not found`);
    await rejects(() => r.service.getJson("tsk_missing", ADMIN), "TaskNotFound", "task tsk_missing not found");
  });

  test("a viewer may read but not change", async () => {
    const { taskId } = await r.service.submit(cmd("true", [], { hold: true }), ALICE);
    const denied = "principal alice (viewer) may not change tasks";
    await rejects(() => r.service.submit(cmd("true"), VIEWER), "PermissionDenied", denied);
    await rejects(() => r.service.cancel(taskId, VIEWER), "PermissionDenied", denied);
    await rejects(() => r.service.delete(taskId, VIEWER), "PermissionDenied", denied);
    await rejects(() => r.service.start(taskId, VIEWER), "PermissionDenied", denied);
    await rejects(() => r.service.restart(taskId, VIEWER), "PermissionDenied", denied);
    expect(r.service.get(taskId, VIEWER).status.phase).toBe("pending");
  });

  test("the watch shows a user only their own tasks", async () => {
    const bobSees = r.service.watch({}, BOB);
    const adminSees = r.service.watch({}, ADMIN);
    const a1 = await r.service.submit(cmd("true", [], { hold: true }), ALICE);
    const b1 = await r.service.submit(cmd("true", [], { hold: true }), BOB);
    await r.service.delete(a1.taskId, ALICE);
    await r.service.delete(b1.taskId, BOB);
    const take = async (sub: AsyncIterable<WatchRecord[]>, n: number) => {
      const got: string[] = [];
      for await (const batch of sub) {
        for (const rec of batch) {
          const e = rec.event;
          got.push(e.type === "task" ? `${e.task.metadata.id === a1.taskId ? "a1" : "b1"}:${e.task.status.phase}` : e.type === "deleted" ? `${e.id === a1.taskId ? "a1" : "b1"}:deleted` : "lagged");
        }
        if (got.length >= n) return got;
      }
      return got;
    };
    expect(await take(bobSees, 3)).toEqual(["b1:pending", "b1:canceled", "b1:deleted"]);
    expect(await take(adminSees, 6)).toEqual(["a1:pending", "b1:pending", "a1:canceled", "a1:deleted", "b1:canceled", "b1:deleted"]);
    bobSees.close();
    adminSees.close();
  });
});

describe("watch filters and logs", () => {
  test("watch by slot and labels (AND)", async () => {
    const sub = r.service.watch({ slot: "w", labels: { team: "edge", env: "prod" } }, ANON);
    await r.service.submit(cmd("true", [], { hold: true, slot: "w", labels: { team: "edge" } }), ANON);
    await r.service.submit(cmd("true", [], { hold: true, slot: "other", labels: { team: "edge", env: "prod" } }), ANON);
    const hit = await r.service.submit(cmd("true", [], { hold: true, slot: "w", labels: { team: "edge", env: "prod", x: "y" } }), ANON);
    for await (const batch of sub) {
      expect(batch.map((rec) => (rec.event.type === "task" ? rec.event.task.metadata.id : rec.event.type))).toEqual([hit.taskId]);
      break;
    }
    sub.close();
  });

  test("the watch keeps at most WATCH_RETAIN_BYTES of changes and hands them out in batches of about WATCH_BATCH_BYTES", async () => {
    // 60 held tasks with a 600 kB env value each: ~36 MB of changes, more than the 32 MiB kept.
    const big = "v".repeat(600_000);
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const spec = { slot: `big-${i}`, hold: true, kind: { subprocess: { mode: { command: { command: "true", args: [] } }, env: [{ key: "BIG", value: big }] } } };
      ids.push((await r.service.submit(spec, ANON)).taskId);
    }
    const sub = r.service.watch({ after: 0 }, ANON);
    const batches: WatchRecord[][] = [];
    for await (const batch of sub) {
      batches.push(batch);
      if (batch.some((rec) => rec.event.type === "task" && rec.event.task.metadata.id === ids.at(-1))) break;
    }
    sub.close();
    const all = batches.flat();
    // The oldest changes are gone: an exact lagged first, then the newest ones, the last task's included.
    expect(all[0]!.event).toEqual({ type: "lagged", skipped: all[1]!.id - 1 });
    const tasks = all.filter((rec) => rec.event.type === "task");
    expect(tasks.length).toBeGreaterThan(40);
    expect(tasks.length).toBeLessThan(60);
    // ~1 MiB per batch: at most two of these changes each.
    for (const batch of batches) expect(batch.filter((rec) => rec.event.type === "task").length).toBeLessThanOrEqual(2);
  });

  test("the watch counts a spec its changes share once: a big task changing often does not push the others out", async () => {
    const small: string[] = [];
    for (let i = 0; i < 20; i++) small.push((await r.service.submit(cmd("true", [], { hold: true, slot: `s-${i}` }), ANON)).taskId);
    // 3 MB of env, restarting at once after every run: dozens of changes of one spec (12 would be 32 MiB, counted per change).
    const spec = {
      slot: "big",
      restart: { type: "always", intervalMs: 0 },
      maxAttempts: 40,
      kind: { subprocess: { mode: { command: { command: "true", args: [] } }, env: [{ key: "BIG", value: "v".repeat(3_000_000) }] } },
    };
    const { taskId } = await r.service.submit(spec, ANON);
    expect((await r.service.wait(taskId, 30_000, ANON)).status.phase).toBe("exhausted");
    const sub = r.service.watch({ after: 0 }, ANON);
    const got: WatchRecord[] = [];
    for await (const batch of sub) {
      got.push(...batch);
      if (batch.some((rec) => rec.event.type === "task" && rec.event.task.status.phase === "exhausted")) break;
    }
    sub.close();
    expect(got.some((rec) => rec.event.type === "lagged")).toBe(false);
    expect(got.filter((rec) => rec.event.type === "task" && rec.event.task.metadata.id === taskId).length).toBeGreaterThan(80);
    expect(new Set(got.flatMap((rec) => (rec.event.type === "task" ? [rec.event.task.metadata.id] : []))).size).toBe(21);
  });

  test("the watch counts a deleted task's labels: 32 MiB of deletions' label sets are not all kept", async () => {
    // 2 100 tasks with 64 labels of 255 characters (≈ 17 kB a set), submitted, then all deleted.
    const labels = (i: number) => Object.fromEntries(Array.from({ length: 64 }, (_, k) => [`k${k}`, `${i}`.padEnd(255, "x")]));
    const ids: string[] = [];
    for (let i = 0; i < 2100; i++) ids.push((await r.service.submit(cmd("true", [], { hold: true, slot: `l-${i}`, labels: labels(i) }), ANON)).taskId);
    for (const id of ids) await r.service.delete(id, ANON);
    const sub = r.service.watch({ after: 0 }, ANON);
    let deleted = 0;
    for await (const batch of sub) {
      deleted += batch.filter((rec) => rec.event.type === "deleted").length;
      if (batch.some((rec) => rec.event.type === "deleted" && rec.event.id === ids.at(-1))) break;
    }
    sub.close();
    // Each deletion is a change (the spec, labels included) and a deleted record (the labels): ≈ 34 kB a pair,
    // so ≈ 970 pairs fit in 32 MiB; counting the deleted records as 128 bytes kept ≈ 1 900.
    expect(deleted).toBeGreaterThan(500);
    expect(deleted).toBeLessThan(1500);
  });

  test("a log subscription opened before the first run follows it to the end", async () => {
    const { taskId } = await r.service.submit(bash("echo one; echo two", { hold: true }), ANON);
    const sub = r.service.logs(taskId, { follow: true }, ANON);
    await r.service.start(taskId, ANON);
    const got: LogRecord[] = [];
    for await (const batch of sub) got.push(...batch);
    expect(got.map((x) => (x.event.type === "chunk" ? x.event.line : x.event.type))).toEqual(["runStarted", "one", "two", "runFinished"]);
    expect(got.map((x) => x.id)).toEqual([1, 2, 3, 4]);
  });

  test("logs of an unknown task are TaskNotFound", async () => {
    await rejects(() => r.service.logs("tsk_nope", { follow: true }, ANON), "TaskNotFound", "task tsk_nope not found");
  });

  test("restart and cancel through the service; cancel of a terminal task answers it as is", async () => {
    const { taskId } = await r.service.submit(cmd("false"), ANON);
    const failed: Task = await r.service.wait(taskId, 10_000, ANON);
    expect(failed.status).toEqual({ phase: "failed", attempt: 1, exitCode: 1, error: "exit code 1" });
    expect(await r.service.cancel(taskId, ANON)).toEqual(failed);
    const restarted = await r.service.restart(taskId, ANON);
    expect(restarted.metadata.id).toBe(taskId);
    const again = await r.service.wait(taskId, 10_000, ANON);
    expect(again.status).toEqual({ phase: "failed", attempt: 2, exitCode: 1, error: "exit code 1" });
    expect(r.service.runs(taskId, ANON).map((x) => x.attempt)).toEqual([1, 2]);
    await rejects(() => r.service.restart("tsk_nope", ANON), "TaskNotFound", "task tsk_nope not found");
  });
});
