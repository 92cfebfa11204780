/**
 * Waits between attempts survive a restart of the agent (CONTRACT §6: `always`
 * reruns after `intervalMs`; backoff before retry n, n the consecutive
 * failures so far): the time the next attempt is due and the failure count
 * are stored with the run, and a restarted agent waits out what is left.
 * Instead of waiting, the later agents read a clock shifted forward: to them
 * the wait is over.
 */
import { describe, expect, test } from "bun:test";
import { commandSpec, startAgent, type StartOptions } from "../helpers/start-agent.ts";
import { getRuns, getTask, submitOk, tempDir, waitForState, waitTerminal } from "../helpers/task-control.ts";

const HOUR = 3_600_000;

/** Run `body` against an agent on `dataDir`, stopping it (a clean shutdown) afterwards. */
async function withAgent<T>(dataDir: string, body: (a: Awaited<ReturnType<typeof startAgent>>) => Promise<T>, opts: StartOptions = {}): Promise<T> {
  await using a = await startAgent({ dataDir, ...opts });
  return await body(a);
}

/** A clock `ms` ahead of the real one. */
const ahead = (ms: number) => () => Date.now() + ms;

describe.each(["main", "thread"] as const)("--spawn-on %s", (spawnOn) => {
  const args = ["--spawn-on", spawnOn];

  test("an always task's interval is not cut short by a restart; once it is over, the task runs", async () => {
    using dir = tempDir("tasklane-timers-");
    const id = await withAgent(dir.path, async (a) => {
      const { id } = await submitOk(a, commandSpec("true", [], { restart: { type: "always", intervalMs: HOUR } }));
      await waitForState(a, id, (t) => t.status.phase === "pending" && t.status.attempt === 1);
      return id;
    }, { args });
    // Restarted within the hour: recovery leaves the task waiting (a due task would be launched by recovery itself).
    await withAgent(dir.path, async (b) => {
      const other = await submitOk(b, commandSpec("true"));
      expect((await waitTerminal(b, other.id)).status.phase).toBe("succeeded");
      expect((await getTask(b, id)).status).toEqual({ phase: "pending", attempt: 1, exitCode: 0 });
      expect(await getRuns(b, id)).toHaveLength(1);
    }, { args });
    // An hour later the interval is over: attempt 2 starts at once.
    await withAgent(dir.path, async (c) => {
      const t = await waitForState(c, id, (t) => t.status.attempt === 2);
      expect(t.status.attempt).toBe(2);
    }, { args, clock: ahead(HOUR + 1000) });
  });

  test("a backoff is not cut short by a restart, and the count of failures carries over", async () => {
    using dir = tempDir("tasklane-timers-");
    // Delays: 1 ms after the first failure, 100 s after the second, the 1 h cap after the third.
    const backoff = { jitter: "none", firstMs: 1, maxMs: HOUR, factor: 100_000 };
    const id = await withAgent(dir.path, async (a) => {
      const { id } = await submitOk(a, commandSpec("false", [], { restart: { type: "onFailure" }, backoff }));
      await waitForState(a, id, (t) => t.status.phase === "pending" && t.status.attempt === 2);
      return id;
    }, { args });
    await withAgent(dir.path, async (b) => {
      expect((await getTask(b, id)).status).toEqual({ phase: "pending", attempt: 2, exitCode: 1, error: "exit code 1" });
    }, { args });
    // 100 s later: attempt 3 runs and fails; two failures were counted before it, so the next wait is the hour.
    await withAgent(dir.path, async (c) => {
      await waitForState(c, id, (t) => t.status.phase === "pending" && t.status.attempt === 3);
    }, { args, clock: ahead(200_000) });
    // A counter that had started again from 0 would have made that wait 1 ms: attempt 4 would start here at once.
    await withAgent(dir.path, async (d) => {
      const other = await submitOk(d, commandSpec("true"));
      await waitTerminal(d, other.id);
      expect((await getTask(d, id)).status).toEqual({ phase: "pending", attempt: 3, exitCode: 1, error: "exit code 1" });
    }, { args, clock: ahead(200_000 + 60_000) });
  });

  test("a run interrupted by the agent's shutdown waits out its backoff after the restart", async () => {
    using dir = tempDir("tasklane-timers-");
    const backoff = { jitter: "none", firstMs: HOUR, maxMs: HOUR, factor: 1 };
    const id = await withAgent(dir.path, async (a) => {
      const { id } = await submitOk(a, commandSpec("sleep", ["300"], { restart: { type: "always", intervalMs: 0 }, backoff }));
      await waitForState(a, id, (t) => t.status.phase === "running");
      return id;
    }, { args });
    await withAgent(dir.path, async (b) => {
      const other = await submitOk(b, commandSpec("true"));
      await waitTerminal(b, other.id);
      expect((await getTask(b, id)).status).toEqual({ phase: "pending", attempt: 1, error: "interrupted: agent shut down" });
      expect((await getRuns(b, id)).map((r) => r.error)).toEqual(["interrupted: agent shut down"]);
    }, { args });
  });
});

describe("a slot's order survives a restart", () => {
  test("the holder waiting out a backoff keeps the slot and its wait; a task released behind it stays queued", async () => {
    using dir = tempDir("tasklane-timers-");
    const backoff = { jitter: "none", firstMs: HOUR, maxMs: HOUR, factor: 1 };
    const { held, holder } = await withAgent(dir.path, async (a) => {
      // Older than the holder, but held: it takes its place in the slot's queue only when released.
      const held = (await submitOk(a, { ...commandSpec("true"), slot: "s", hold: true })).id;
      const holder = (await submitOk(a, { ...commandSpec("false", [], { restart: { type: "onFailure" }, backoff, maxAttempts: 2 }), slot: "s" })).id;
      await waitForState(a, holder, (t) => t.status.phase === "pending" && t.status.attempt === 1);
      const started = await a.json("POST", `/api/v1/tasks/${held}/start`);
      expect(started.status).toBe(200);
      expect(started.body.task.status).toEqual({ phase: "pending", attempt: 0 });
      return { held, holder };
    });
    // Restarted within the hour: nothing runs; the holder still waits, the released task behind it.
    await withAgent(dir.path, async (b) => {
      const other = await submitOk(b, commandSpec("true"));
      expect((await waitTerminal(b, other.id)).status.phase).toBe("succeeded");
      expect((await getTask(b, holder)).status).toEqual({ phase: "pending", attempt: 1, exitCode: 1, error: "exit code 1" });
      expect((await getTask(b, held)).status).toEqual({ phase: "pending", attempt: 0 });
      expect(await getRuns(b, held)).toHaveLength(0);
    });
    // An hour later: the holder's second attempt runs (and exhausts it), then the released task.
    await withAgent(dir.path, async (c) => {
      expect((await waitTerminal(c, holder)).status.phase).toBe("exhausted");
      expect((await waitTerminal(c, held)).status.phase).toBe("succeeded");
      const [holderRuns, heldRuns] = [await getRuns(c, holder), await getRuns(c, held)];
      expect(heldRuns[0]!.startedAt).toBeGreaterThanOrEqual(holderRuns[1]!.finishedAt!);
    }, { clock: ahead(HOUR + 1000) });
  });

  test("tasks that never ran keep the slot's admission order, not their creation order", async () => {
    using dir = tempDir("tasklane-timers-");
    // One run at a time: the blocker takes it, so the slot's holder waits for capacity.
    const args = ["--max-concurrent", "1"];
    const { held, holder } = await withAgent(dir.path, async (a) => {
      const blocker = (await submitOk(a, commandSpec("sleep", ["300"]))).id;
      await waitForState(a, blocker, (t) => t.status.phase === "running");
      const held = (await submitOk(a, { ...commandSpec("true"), slot: "s", hold: true })).id;
      const holder = (await submitOk(a, { ...commandSpec("true"), slot: "s" })).id;
      expect((await a.json("POST", `/api/v1/tasks/${held}/start`)).status).toBe(200);
      return { held, holder };
      // A clock that moves on at every read: the submit and the release never share a millisecond (the order
      // of two admissions within one is their creation order, docs/operations.md).
    }, { args, clock: (() => { let n = 0; return () => Date.now() + n++; })() });
    // The blocker's run is interrupted by the restart (no restart policy: it ends failed), freeing the capacity.
    await withAgent(dir.path, async (b) => {
      await waitTerminal(b, held);
      await waitTerminal(b, holder);
      const [holderRun] = await getRuns(b, holder);
      const [heldRun] = await getRuns(b, held);
      expect(heldRun!.startedAt).toBeGreaterThanOrEqual(holderRun!.finishedAt!);
    }, { args });
  });
});
