import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { processGone } from "../helpers/process.ts";
import { readSse } from "../helpers/sse.ts";
import { groupAndSession, otherGroupsScript, sessionCleanup, sessionPids, waitSessionEmpty } from "../runner/session.ts";
import { startBinary, submitTo as submit, tempDirs, type RunningBinary } from "./binary.ts";

const tempDir = tempDirs("tasklane-crash-");

const b64 = (s: string) => Buffer.from(s).toString("base64");
const cleanup = sessionCleanup();

async function getTask(agent: RunningBinary, id: string): Promise<any> {
  const res = await fetch(`${agent.url}/api/v1/tasks/${id}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { task: unknown }).task;
}

async function waitTerminal(agent: RunningBinary, id: string): Promise<any> {
  const res = await fetch(`${agent.url}/api/v1/tasks/${id}/wait?timeoutMs=30000`);
  return ((await res.json()) as { task: unknown }).task;
}

/** Read the task's live log until a line matches; returns the match. */
async function waitForLine(agent: RunningBinary, id: string, re: RegExp): Promise<RegExpExecArray> {
  const res = await fetch(`${agent.url}/api/v1/tasks/${id}/logs`);
  for await (const ev of readSse(res)) {
    if (ev.event !== "chunk") continue;
    const m = re.exec(ev.data.line);
    if (m) return m; // leaving the loop closes the stream
  }
  throw new Error(`stream of ${id} ended without ${re}`);
}

/**
 * A task retried on failure with `maxAttempts`: every attempt exits 1, except the `hangAt`-th overall (counted
 * in a file), which prints "hanging" and sleeps until the agent is killed.
 */
function failsButHangsAt(hangAt: number, maxAttempts: number) {
  const counter = join(tempDir(), "count");
  const body = `n=$(cat ${counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${counter}; if [ $n -eq ${hangAt} ]; then echo hanging; exec sleep 300; fi; exit 1`;
  return {
    slot: "R",
    kind: { subprocess: { mode: { script: { runtime: "bash", body: b64(body) } } } },
    restart: { type: "onFailure" },
    backoff: { jitter: "none", firstMs: 5, maxMs: 5, factor: 1 },
    maxAttempts,
  };
}

describe("crash safety of the compiled binary", () => {
  for (const spawnOn of ["main", "thread"]) {
    test(`kill -9 with running, queued, pending and held tasks; restart recovers all of it (--spawn-on ${spawnOn})`, async () => {
      const dataDir = tempDir();
      const work = tempDir();
      const marker = join(work, "first-attempt-done");
      const a = await startBinary({ dataDir, args: ["--max-concurrent", "2", "--spawn-on", spawnOn] });
      let ids: { retrying: string; queued: string; oneShot: string; waiting: string; held: string };
      let pids: number[];
      try {
        const retrying = await submit(a, {
          slot: "A",
          kind: { subprocess: { mode: { script: { runtime: "bash", body: b64(`if [ -e ${marker} ]; then echo second-attempt; exit 0; fi; touch ${marker}; sleep 300 & echo pid=$!; wait`) } } } },
          restart: { type: "onFailure" },
          backoff: { jitter: "none", firstMs: 5, maxMs: 5, factor: 1 },
          maxAttempts: 3,
        });
        const queued = await submit(a, { slot: "A", kind: { subprocess: { mode: { command: { command: "echo", args: ["queued-ran"] } } } }, admission: "queue" });
        const oneShot = await submit(a, {
          slot: "B",
          kind: { subprocess: { mode: { script: { runtime: "bash", body: b64("sleep 300 & echo pid=$!; wait") } } } },
        });
        const waiting = await submit(a, { slot: "C", kind: { subprocess: { mode: { command: { command: "echo", args: ["capacity-ran"] } } } } });
        const held = await submit(a, { slot: "D", hold: true, kind: { subprocess: { mode: { command: { command: "true", args: [] } } } } });
        ids = { retrying, queued, oneShot, waiting, held };
        pids = [
          Number((await waitForLine(a, retrying, /^pid=(\d+)$/))[1]),
          Number((await waitForLine(a, oneShot, /^pid=(\d+)$/))[1]),
        ];
        expect((await getTask(a, queued)).status.phase).toBe("pending");
        expect((await getTask(a, waiting)).status.phase).toBe("pending");
      } finally {
        await a.stop("SIGKILL");
      }
      // The children outlived the agent (it died without cleaning up).
      for (const pid of pids) expect(processGone(pid)).toBe(false);

      const b = await startBinary({ dataDir, args: ["--max-concurrent", "2", "--spawn-on", spawnOn] });
      try {
        // Leftover process groups of interrupted runs are killed at start-up.
        for (const pid of pids) expect(processGone(pid)).toBe(true);

        const oneShot = await waitTerminal(b, ids.oneShot);
        expect(oneShot.status).toEqual({ phase: "failed", attempt: 1, error: "interrupted: agent restarted" });

        const retrying = await waitTerminal(b, ids.retrying);
        expect(retrying.status).toEqual({ phase: "succeeded", attempt: 2, exitCode: 0 });
        const runs = ((await (await fetch(`${b.url}/api/v1/tasks/${ids.retrying}/runs`)).json()) as any).runs;
        expect(runs).toEqual([
          { attempt: 1, phase: "failed", startedAt: expect.any(Number), finishedAt: expect.any(Number), error: "interrupted: agent restarted" },
          { attempt: 2, phase: "succeeded", startedAt: expect.any(Number), finishedAt: expect.any(Number), exitCode: 0 },
        ]);

        expect((await waitTerminal(b, ids.queued)).status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
        expect((await waitTerminal(b, ids.waiting)).status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
        const held = await getTask(b, ids.held);
        expect(held.status).toEqual({ phase: "pending", attempt: 0 });
        expect(held.spec.hold).toBe(true);

        // Logs survive the restart: the interrupted run is closed with a marker, and a
        // finished task's output is persisted with its final state.
        const oneShotLogs = await (await fetch(`${b.url}/api/v1/tasks/${ids.oneShot}/logs?follow=false`)).text();
        expect(oneShotLogs).toContain('"type":"runFinished","attempt":1');
        const retryLogs = await (await fetch(`${b.url}/api/v1/tasks/${ids.retrying}/logs?follow=false`)).text();
        expect(retryLogs).toContain('"line":"second-attempt"');
      } finally {
        expect(await b.stop()).toBe(0);
      }
    });
  }

  for (const spawnOn of ["main", "thread"]) {
    test(`recovery kills what an interrupted run left in other process groups of its session (--spawn-on ${spawnOn})`, async () => {
      const dataDir = tempDir();
      const args = ["--spawn-on", spawnOn];
      const a = await startBinary({ dataDir, args });
      let id: string;
      let sid: number;
      try {
        id = await submit(a, { slot: "S", kind: { subprocess: { mode: { script: { runtime: "bash", body: b64(otherGroupsScript()) } } } } });
        const pids = [];
        for (const re of [/^timeout-child (\d+)$/, /^job (\d+)$/]) pids.push(Number((await waitForLine(a, id, re))[1]));
        sid = cleanup.add(groupAndSession(pids[1]!)![1]);
        for (const pid of pids) expect(groupAndSession(pid)![0]).not.toBe(sid); // outside the run's group
        // The run's identity is stored by then, but commits with the next group commit (≈ 2 ms later, more
        // under load): a submit answers after a durable commit, which covers every earlier write.
        await submit(a, { slot: "barrier", hold: true, kind: { subprocess: { mode: { command: { command: "true", args: [] } } } } });
      } finally {
        await a.stop("SIGKILL");
      }
      expect(sessionPids(sid)).toHaveLength(4); // the run outlived the agent: leader, timeout, its child, the job
      const b = await startBinary({ dataDir, args });
      try {
        expect(await waitSessionEmpty(sid)).toEqual([]);
        expect((await waitTerminal(b, id)).status).toEqual({ phase: "failed", attempt: 1, error: "interrupted: agent restarted" });
      } finally {
        expect(await b.stop()).toBe(0);
      }
    });
  }

  test("a replace or cancel cut short by a kill -9 in the kill grace ends canceled; the replacing task runs", async () => {
    const dataDir = tempDir();
    // Ignores the first TERM (says so) and would run on: only the end of the grace, or the crash, stops it.
    const stubborn = (slot: string) => ({
      slot,
      kind: { subprocess: { mode: { script: { runtime: "bash", body: b64("trap 'echo term' TERM; echo pid=$$; while true; do sleep 0.05; done") } } } },
      restart: { type: "onFailure" },
      backoff: { jitter: "none", firstMs: 5, maxMs: 5, factor: 1 },
      killGraceMs: 60000,
    });
    const a = await startBinary({ dataDir });
    let ids: { replaced: string; replacing: string; canceled: string };
    try {
      const replaced = await submit(a, stubborn("R"));
      const canceled = await submit(a, stubborn("S"));
      await waitForLine(a, replaced, /^pid=/);
      await waitForLine(a, canceled, /^pid=/);
      const res = await fetch(`${a.url}/api/v1/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ spec: { slot: "R", admission: "replace", kind: { subprocess: { mode: { command: { command: "echo", args: ["replacing-ran"] } } } } } }),
      });
      expect(res.status).toBe(201);
      const body = (await res.json()) as { task_id: string; admission: string };
      expect(body.admission).toBe("replaced");
      // The cancel answers only after the grace: it is left pending when the agent dies.
      const cancel = fetch(`${a.url}/api/v1/tasks/${canceled}/cancel`, { method: "POST" }).catch(() => undefined);
      await waitForLine(a, replaced, /^term$/);
      await waitForLine(a, canceled, /^term$/);
      ids = { replaced, replacing: body.task_id, canceled };
      await a.stop("SIGKILL");
      await cancel;
    } finally {
      await a.stop("SIGKILL");
    }
    const b = await startBinary({ dataDir });
    try {
      expect((await getTask(b, ids.replaced)).status).toEqual({ phase: "canceled", attempt: 1, error: `replaced by ${ids.replacing}` });
      expect((await getTask(b, ids.canceled)).status).toEqual({ phase: "canceled", attempt: 1, error: "canceled" });
      const runs = ((await (await fetch(`${b.url}/api/v1/tasks/${ids.replaced}/runs`)).json()) as any).runs;
      expect(runs).toEqual([{ attempt: 1, phase: "canceled", startedAt: expect.any(Number), finishedAt: expect.any(Number), error: `replaced by ${ids.replacing}` }]);
      expect((await waitTerminal(b, ids.replacing)).status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
    } finally {
      expect(await b.stop()).toBe(0);
    }
  });

  test("a restarted task keeps its fresh budget of maxAttempts across a kill -9", async () => {
    const dataDir = tempDir();
    const a = await startBinary({ dataDir });
    let id: string;
    try {
      // Attempts 1, 2 fail; attempt 3 (the first after the restart) hangs until the crash; then fail.
      id = await submit(a, failsButHangsAt(3, 2));
      expect((await waitTerminal(a, id)).status.phase).toBe("exhausted");
      expect((await fetch(`${a.url}/api/v1/tasks/${id}/restart`, { method: "POST" })).status).toBe(200);
      await waitForLine(a, id, /^hanging$/);
    } finally {
      await a.stop("SIGKILL");
    }
    const b = await startBinary({ dataDir });
    try {
      // Attempt 3 was interrupted (1 of 2 since the restart): one more attempt, then exhausted.
      expect((await waitTerminal(b, id)).status).toEqual({
        phase: "exhausted",
        attempt: 4,
        exitCode: 1,
        error: "exhausted: 2 of 2 attempts used since the restart (last: exit code 1)",
      });
    } finally {
      expect(await b.stop()).toBe(0);
    }
  });

  test("the budget of a restart survives a stop before the restarted task ran, and --max-runs trimming the runs", async () => {
    // Fails; its 5th attempt overall (the 2nd after the restart) hangs until the crash.
    const spec = failsButHangsAt(5, 3);
    const dataDir = tempDir();
    const args = ["--max-concurrent", "1", "--max-runs", "1"];
    let id: string;
    // 1. Exhausted after 3 attempts; restarted while a blocker holds the only capacity; stopped before it ran.
    const a = await startBinary({ dataDir, args });
    try {
      id = await submit(a, spec);
      expect((await waitTerminal(a, id)).status.phase).toBe("exhausted");
      const blocker = await submit(a, { slot: "blocker", kind: { subprocess: { mode: { script: { runtime: "bash", body: b64("echo pid=$$; exec sleep 300") } } } } });
      await waitForLine(a, blocker, /^pid=/);
      expect((await fetch(`${a.url}/api/v1/tasks/${id}/restart`, { method: "POST" })).status).toBe(200);
      expect((await getTask(a, id)).status).toEqual({ phase: "pending", attempt: 3 });
    } finally {
      await a.stop("SIGKILL");
    }
    // 2. Attempt 4 fails, attempt 5 hangs (attempt 4's run, the first after the restart, is trimmed by --max-runs 1).
    const b = await startBinary({ dataDir, args });
    try {
      await waitForLine(b, id, /^hanging$/);
    } finally {
      await b.stop("SIGKILL");
    }
    // 3. Attempt 5 was interrupted: 2 of 3 since the restart, one more to go.
    const c = await startBinary({ dataDir, args });
    try {
      expect((await waitTerminal(c, id)).status).toEqual({
        phase: "exhausted",
        attempt: 6,
        exitCode: 1,
        error: "exhausted: 3 of 3 attempts used since the restart (last: exit code 1)",
      });
      const runs = ((await (await fetch(`${c.url}/api/v1/tasks/${id}/runs`)).json()) as { runs: object[] }).runs;
      expect(runs).toEqual([{ attempt: 6, phase: "failed", startedAt: expect.any(Number), finishedAt: expect.any(Number), exitCode: 1, error: "exit code 1" }]);
    } finally {
      expect(await c.stop()).toBe(0);
    }
  });

  test("after a kill -9, capacity goes to the waiting tasks by priority, then submission", async () => {
    const dataDir = tempDir();
    const out = join(tempDir(), "order");
    const step = (name: string, priority: number) => ({
      slot: name,
      priority,
      kind: { subprocess: { mode: { script: { runtime: "bash", body: b64(`echo ${name} >> ${out}`) } } } },
    });
    const a = await startBinary({ dataDir, args: ["--max-concurrent", "1"] });
    let ids: string[];
    try {
      const blocker = await submit(a, { slot: "blocker", kind: { subprocess: { mode: { script: { runtime: "bash", body: b64("echo pid=$$; exec sleep 300") } } } } });
      await waitForLine(a, blocker, /^pid=/);
      ids = [await submit(a, step("low-1", 0)), await submit(a, step("low-2", 0)), await submit(a, step("high", 10)), await submit(a, step("low-3", 0))];
    } finally {
      await a.stop("SIGKILL");
    }
    const b = await startBinary({ dataDir, args: ["--max-concurrent", "1"] });
    try {
      for (const id of ids) expect((await waitTerminal(b, id)).status.phase).toBe("succeeded");
      expect((await Bun.file(out).text()).trim().split("\n")).toEqual(["high", "low-1", "low-2", "low-3"]);
    } finally {
      expect(await b.stop()).toBe(0);
    }
  });

  test("every 201 survives a kill -9 right after the last answer", async () => {
    const dataDir = tempDir();
    const a = await startBinary({ dataDir });
    const n = 200;
    let ids: string[];
    try {
      ids = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          submit(a, { slot: `burst-${i % 20}`, hold: true, kind: { subprocess: { mode: { command: { command: "true", args: [] } } } } }),
        ),
      );
    } finally {
      await a.stop("SIGKILL");
    }
    const b = await startBinary({ dataDir });
    try {
      const list = (await (await fetch(`${b.url}/api/v1/tasks?limit=1000`)).json()) as { tasks: any[]; total: number };
      expect(list.total).toBe(n);
      expect(new Set(list.tasks.map((t) => t.metadata.id))).toEqual(new Set(ids));
    } finally {
      await b.stop();
    }
  });
});
