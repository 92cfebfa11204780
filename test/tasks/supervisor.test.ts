/**
 * Supervisor semantics (CONTRACT §6) through a real agent on port 0: restart
 * policies, backoff, timeout, admission per slot, the global concurrency
 * limit with priorities, hold/start, restart, cancel, delete and shutdown.
 * Tasks that must stay inside their run block on a fifo the test releases.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { processGone } from "../helpers/process.ts";
import { bashSpec, commandSpec, startAgent, type TestAgent } from "../helpers/start-agent.ts";
import {
  blockSpec,
  getRuns,
  getTask,
  makeFifo,
  release,
  submit,
  submitOk,
  tempDir,
  waitForPid,
  waitForState,
  waitTerminal,
} from "../helpers/task-control.ts";

const meta = { id: expect.any(String), resourceVersion: expect.any(Number), createdAt: expect.any(Number), updatedAt: expect.any(Number) };
const fastBackoff = { jitter: "equal", firstMs: 10, maxMs: 40, factor: 2 };

// Every case runs with tasks spawned on the main thread (the default) and on the runner thread.
for (const spawnOn of ["main", "thread"] as const) {
  describe(`--spawn-on ${spawnOn}`, () => {
    const spawnArgs = ["--spawn-on", spawnOn];
    let a: TestAgent;
    let dir: ReturnType<typeof tempDir>;
    beforeAll(async () => {
      dir = tempDir();
      // random 0 pins "equal" jitter to base/2: delays 5, 10, 20 ms…
      a = await startAgent({ random: () => 0, args: spawnArgs });
    });
    afterAll(async () => {
      await a?.[Symbol.asyncDispose]();
      dir?.[Symbol.dispose]();
    });

    function fifo(name: string): string {
      return makeFifo(dir.path, `${name}-${crypto.randomUUID().slice(0, 8)}`);
    }
    function outFile(name: string): string {
      return join(dir.path, `${name}-${crypto.randomUUID().slice(0, 8)}.out`);
    }

    /**
     * An old task in slot `<name>-slot` that takes 200 ms to die after SIGTERM, and
     * `sawOld(who)`: a script appending "<who> old alive" or "<who> old gone" to `out`.
     */
    async function slowToDie(name: string) {
      const out = outFile(name);
      const slot = `${name}-slot`;
      const old = await submitOk(a, blockSpec(fifo(name), "old", out, { slot, env: [{ key: "TERM_DELAY", value: "0.2" }] }));
      const oldPid = await waitForPid(a, old.id);
      const sawOld = (who: string) =>
        `if kill -0 ${oldPid} 2>/dev/null; then echo "${who} old alive" >> ${out}; else echo "${who} old gone" >> ${out}; fi`;
      return { out, slot, old, sawOld };
    }
    function lines(path: string): string[] {
      return readFileSync(path, "utf8").split("\n").filter(Boolean);
    }

    describe("restart policies", () => {
      test("onFailure retries with backoff, then exhausted at maxAttempts; every attempt is in the history", async () => {
        const spec = bashSpec("echo try; exit 1", { restart: { type: "onFailure" }, backoff: fastBackoff, maxAttempts: 3 });
        const { id } = await submitOk(a, spec);
        const task = await waitTerminal(a, id);
        expect(task).toEqual({
          metadata: { ...meta, id },
          spec: expect.objectContaining({ restart: { type: "onFailure" }, maxAttempts: 3 }),
          status: { phase: "exhausted", attempt: 3, exitCode: 1, error: "exhausted: 3 of 3 attempts used (last: exit code 1)" },
        });
        const runs = await getRuns(a, id);
        const failed = (attempt: number) => ({
          attempt,
          phase: "failed" as const,
          startedAt: expect.any(Number),
          finishedAt: expect.any(Number),
          exitCode: 1,
          error: "exit code 1",
        });
        expect(runs).toEqual([failed(1), failed(2), failed(3)]);
        // equal jitter with random 0: base/2 = 5 ms, then 10 ms
        expect(runs[1]!.startedAt - runs[0]!.finishedAt!).toBeGreaterThanOrEqual(5);
        expect(runs[2]!.startedAt - runs[1]!.finishedAt!).toBeGreaterThanOrEqual(10);
      });

      test("onFailure stops retrying after a success", async () => {
        const counter = outFile("count");
        const script = `n=$(cat ${counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${counter}; [ $n -ge 3 ]`;
        const { id } = await submitOk(a, bashSpec(script, { restart: { type: "onFailure" }, backoff: fastBackoff }));
        const task = await waitTerminal(a, id);
        expect(task.status).toEqual({ phase: "succeeded", attempt: 3, exitCode: 0 });
        expect((await getRuns(a, id)).map((r) => [r.attempt, r.phase, r.exitCode])).toEqual([
          [1, "failed", 1],
          [2, "failed", 1],
          [3, "succeeded", 0],
        ]);
      });

      test("always reruns after success, intervalMs apart, until maxAttempts", async () => {
        const spec = bashSpec("echo again", { restart: { type: "always", intervalMs: 15 }, maxAttempts: 3 });
        const { id } = await submitOk(a, spec);
        const task = await waitTerminal(a, id);
        expect(task.status).toEqual({
          phase: "exhausted",
          attempt: 3,
          exitCode: 0,
          error: "exhausted: 3 of 3 attempts used (last: succeeded)",
        });
        const runs = await getRuns(a, id);
        expect(runs).toEqual(
          [1, 2, 3].map((attempt) => ({ attempt, phase: "succeeded", startedAt: expect.any(Number), finishedAt: expect.any(Number), exitCode: 0 })),
        );
        expect(runs[1]!.startedAt - runs[0]!.finishedAt!).toBeGreaterThanOrEqual(15);
        expect(runs[2]!.startedAt - runs[1]!.finishedAt!).toBeGreaterThanOrEqual(15);
      });

      test("always without maxAttempts keeps going until canceled", async () => {
        const { id } = await submitOk(a, bashSpec("echo tick", { restart: { type: "always", intervalMs: 1 } }));
        await waitForState(a, id, (t) => t.status.attempt >= 3);
        const r = await a.json("POST", `/api/v1/tasks/${id}/cancel`);
        expect(r.status).toBe(200);
        expect(r.body.task.status.phase).toBe("canceled");
        const runs = await getRuns(a, id);
        expect(runs.length).toBeGreaterThanOrEqual(3);
        expect(runs.slice(0, 2).map((x) => x.phase)).toEqual(["succeeded", "succeeded"]);
        expect((await waitTerminal(a, id)).status.phase).toBe("canceled");
      });

      test("a command that does not exist fails the run with a clear error", async () => {
        const { id } = await submitOk(a, commandSpec("no-such-command-tasklane"));
        expect((await waitTerminal(a, id)).status).toEqual({ phase: "failed", attempt: 1, error: "command not found: no-such-command-tasklane" });
        expect(await getRuns(a, id)).toEqual([
          { attempt: 1, phase: "failed", startedAt: expect.any(Number), finishedAt: expect.any(Number), error: "command not found: no-such-command-tasklane" },
        ]);
      });

      test("a 5000-character command or cwd fails its run (not left running) and the slot moves on", async () => {
        const slot = `long-${crypto.randomUUID().slice(0, 8)}`;
        const { id } = await submitOk(a, commandSpec("a".repeat(5000), [], { slot }));
        const cwd = commandSpec("true", [], { slot });
        (cwd.kind as any).subprocess.cwd = `/tmp/${"b".repeat(5000)}`;
        const { id: id2 } = await submitOk(a, cwd);
        const { id: next } = await submitOk(a, commandSpec("true", [], { slot }));
        expect((await waitTerminal(a, id)).status).toEqual({ phase: "failed", attempt: 1, error: `command not found: ${"a".repeat(80)}…` });
        expect((await waitTerminal(a, id2)).status).toEqual({
          phase: "failed",
          attempt: 1,
          error: `cwd /tmp/${"b".repeat(75)}… does not exist or is not a directory`,
        });
        expect((await waitTerminal(a, next)).status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
      });

      test("a script interpreter that is not installed fails the run with a clear error", async () => {
        const spec = bashSpec("puts 1");
        (spec.kind as any).subprocess.mode.script.runtime = { custom: { command: "no-such-interpreter-tasklane", flag: "-e" } };
        const { id } = await submitOk(a, spec);
        expect((await waitTerminal(a, id)).status).toEqual({
          phase: "failed",
          attempt: 1,
          error: "interpreter no-such-interpreter-tasklane not found on PATH",
        });
      });

      test("failOnNonZero false: exit 3 is a success", async () => {
        const spec = bashSpec("exit 3");
        (spec.kind as any).subprocess.failOnNonZero = false;
        const { id } = await submitOk(a, spec);
        expect((await waitTerminal(a, id)).status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 3 });
        expect(await getRuns(a, id)).toEqual([
          { attempt: 1, phase: "succeeded", startedAt: expect.any(Number), finishedAt: expect.any(Number), exitCode: 3 },
        ]);
      });

      test("failOnNonZero defaults to true: exit 3 fails", async () => {
        const { id } = await submitOk(a, bashSpec("exit 3"));
        expect((await waitTerminal(a, id)).status).toEqual({ phase: "failed", attempt: 1, exitCode: 3, error: "exit code 3" });
      });

      test("timeout stops the run: phase timeout, error names the timeout", async () => {
        const f = fifo("timeout");
        const { id } = await submitOk(a, blockSpec(f, "t", "", { timeout: 150, killGraceMs: 100 }));
        const pid = await waitForPid(a, id);
        const task = await waitTerminal(a, id);
        expect(task.status).toEqual({ phase: "timeout", attempt: 1, error: "timed out after 150 ms" });
        expect(await getRuns(a, id)).toEqual([
          { attempt: 1, phase: "timeout", startedAt: expect.any(Number), finishedAt: expect.any(Number), error: "timed out after 150 ms" },
        ]);
        expect(processGone(pid)).toBe(true);
      });

      test("a timeout counts as a failure for onFailure", async () => {
        const f = fifo("timeout-retry");
        const spec = blockSpec(f, "t", "", { timeout: 100, killGraceMs: 50, restart: { type: "onFailure" }, backoff: fastBackoff, maxAttempts: 2 });
        const { id } = await submitOk(a, spec);
        const task = await waitTerminal(a, id);
        expect(task.status).toEqual({ phase: "exhausted", attempt: 2, error: "exhausted: 2 of 2 attempts used (last: timed out after 100 ms)" });
        expect((await getRuns(a, id)).map((r) => r.phase)).toEqual(["timeout", "timeout"]);
      });
    });

    describe("admission per slot", () => {
      test("dropIfRunning: the second task is canceled and the answer says dropped", async () => {
        const f = fifo("drop");
        const first = await submitOk(a, blockSpec(f, "first", "", { slot: "drop-slot" }));
        expect(first.admission).toBe("started");
        await waitForPid(a, first.id);
        const r = await submit(a, commandSpec("true", [], { slot: "drop-slot", admission: "dropIfRunning" }));
        expect(r).toEqual({ status: 201, body: { task_id: expect.stringMatching(/^tsk_[0-9A-HJKMNP-TV-Z]{26}$/), admission: "dropped" } });
        const dropped = await getTask(a, r.body.task_id);
        expect(dropped.status).toEqual({ phase: "canceled", attempt: 0, error: `dropped: slot drop-slot busy with ${first.id}` });
        expect(await getRuns(a, r.body.task_id)).toEqual([]);
        await release(f);
        expect((await waitTerminal(a, first.id)).status.phase).toBe("succeeded");
      });

      for (const admission of ["dropIfRunning", "replace"] as const) {
        test(`${admission} on a free slot starts at once`, async () => {
          const r = await submitOk(a, commandSpec("true", [], { admission }));
          expect(r.admission).toBe("started");
          expect((await waitTerminal(a, r.id)).status.phase).toBe("succeeded");
        });
      }

      test("replace: the running task is canceled, queued ones dropped, the new one starts after the old exited", async () => {
        // The old task takes 200 ms to die after SIGTERM: the new one must not start meanwhile.
        const { out, slot, old, sawOld } = await slowToDie("replace");
        const queued = await submitOk(a, commandSpec("true", [], { slot, admission: "queue" }));
        expect(queued.admission).toBe("queued");
        const fresh = await submitOk(a, bashSpec(sawOld("new saw"), { slot, admission: "replace" }));
        expect(fresh.admission).toBe("replaced");

        const newTask = await waitTerminal(a, fresh.id);
        expect(newTask.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
        expect((await waitTerminal(a, old.id)).status).toEqual({ phase: "canceled", attempt: 1, exitCode: 143, error: `replaced by ${fresh.id}` });
        expect((await getTask(a, queued.id)).status).toEqual({ phase: "canceled", attempt: 0, error: `replaced by ${fresh.id}` });
        expect(await getRuns(a, queued.id)).toEqual([]);
        expect(lines(out)).toEqual(["start old", "term old", "new saw old gone"]);
        const [oldRun] = await getRuns(a, old.id);
        const [newRun] = await getRuns(a, fresh.id);
        expect(oldRun).toEqual({ attempt: 1, phase: "canceled", startedAt: expect.any(Number), finishedAt: expect.any(Number), exitCode: 143, error: `replaced by ${fresh.id}` });
        expect(newRun!.startedAt).toBeGreaterThanOrEqual(oldRun!.finishedAt!);
      });

      test("replace twice in a row: the last one still waits for the first to exit", async () => {
        const { out, slot, old, sawOld } = await slowToDie("replace2");
        const second = await submitOk(a, bashSpec(sawOld("saw"), { slot, admission: "replace" }));
        const third = await submitOk(a, bashSpec(sawOld("saw"), { slot, admission: "replace" }));
        expect([second.admission, third.admission]).toEqual(["replaced", "replaced"]);
        expect((await waitTerminal(a, third.id)).status.phase).toBe("succeeded");
        expect((await waitTerminal(a, second.id)).status).toEqual({ phase: "canceled", attempt: 0, error: `replaced by ${third.id}` });
        expect((await waitTerminal(a, old.id)).status).toEqual({ phase: "canceled", attempt: 1, exitCode: 143, error: `replaced by ${second.id}` });
        expect(lines(out)).toEqual(["start old", "term old", "saw old gone"]);
      });

      test("canceling the replacement while the old task is still exiting does not free the slot early", async () => {
        const { out, slot, old, sawOld } = await slowToDie("replace-cancel");
        const fresh = await submitOk(a, commandSpec("true", [], { slot, admission: "replace" }));
        const canceled = await a.json("POST", `/api/v1/tasks/${fresh.id}/cancel`);
        expect(canceled.body.task.status).toEqual({ phase: "canceled", attempt: 0, error: "canceled" });
        const next = await submitOk(a, bashSpec(sawOld("next saw"), { slot, admission: "queue" }));
        expect(next.admission).toBe("queued");
        expect((await waitTerminal(a, next.id)).status.phase).toBe("succeeded");
        expect(lines(out)).toEqual(["start old", "term old", "next saw old gone"]);
      });

      test("concurrent dropIfRunning submits on a free slot: exactly one starts", async () => {
        const f = fifo("race");
        const specs = Array.from({ length: 10 }, (_, i) => blockSpec(f, `r${i}`, "", { slot: "race-slot", admission: "dropIfRunning" }));
        const answers = await Promise.all(specs.map((s) => submitOk(a, s)));
        const started = answers.filter((x) => x.admission === "started");
        expect(started.length).toBe(1);
        expect(answers.filter((x) => x.admission === "dropped").length).toBe(9);
        for (const x of answers) {
          if (x.admission === "dropped") {
            expect((await getTask(a, x.id)).status).toEqual({ phase: "canceled", attempt: 0, error: `dropped: slot race-slot busy with ${started[0]!.id}` });
          }
        }
        await waitForPid(a, started[0]!.id);
        await release(f);
        expect((await waitTerminal(a, started[0]!.id)).status.phase).toBe("succeeded");
      });

      test("a storm of concurrent replaces: only the last admitted runs, after the old one exited", async () => {
        const f = fifo("storm");
        const out = outFile("storm");
        const slot = "storm-slot";
        const old = await submitOk(a, blockSpec(f, "old", out, { slot, env: [{ key: "TERM_DELAY", value: "0.1" }] }));
        await waitForPid(a, old.id);
        const step = (i: number) => bashSpec(`echo "start r${i}" >> ${out}; echo "end r${i}" >> ${out}`, { slot, admission: "replace" });
        const answers = await Promise.all([0, 1, 2, 3, 4].map((i) => submitOk(a, step(i))));
        expect(answers.map((x) => x.admission)).toEqual(["replaced", "replaced", "replaced", "replaced", "replaced"]);
        const finals = await Promise.all(answers.map((x) => waitTerminal(a, x.id)));
        const winners = finals.filter((t) => t.status.phase === "succeeded");
        expect(winners.length).toBe(1);
        const oldFinal = await waitTerminal(a, old.id);
        expect(oldFinal.status.phase).toBe("canceled");
        // every loser names the task that replaced it: a chain old → … → winner
        const replacedBy = new Map([oldFinal, ...finals].filter((t) => t.status.phase === "canceled").map((t) => [t.metadata.id, t.status.error]));
        let cursor = old.id;
        for (let i = 0; i < 5; i++) cursor = replacedBy.get(cursor)!.replace("replaced by ", "");
        expect(cursor).toBe(winners[0]!.metadata.id);
        const idx = answers.findIndex((x) => x.id === winners[0]!.metadata.id);
        expect(lines(out)).toEqual(["start old", "term old", `start r${idx}`, `end r${idx}`]);
      });

      test("queue: FIFO per slot, the next starts only after the previous ended", async () => {
        const f = fifo("queue");
        const out = outFile("queue");
        const slot = "queue-slot";
        const first = await submitOk(a, blockSpec(f, "A", out, { slot, admission: "queue" }));
        expect(first.admission).toBe("started");
        await waitForPid(a, first.id);
        const step = (name: string) => bashSpec(`echo "start ${name}" >> ${out}; echo "end ${name}" >> ${out}`, { slot, admission: "queue" });
        const second = await submitOk(a, step("B"));
        const third = await submitOk(a, step("C"));
        expect([second.admission, third.admission]).toEqual(["queued", "queued"]);
        expect((await getTask(a, second.id)).status).toEqual({ phase: "pending", attempt: 0 });
        expect(await getRuns(a, second.id)).toEqual([]);
        await release(f);
        for (const id of [first.id, second.id, third.id]) expect((await waitTerminal(a, id)).status.phase).toBe("succeeded");
        expect(lines(out)).toEqual(["start A", "end A", "start B", "end B", "start C", "end C"]);
        const [r1] = await getRuns(a, first.id);
        const [r2] = await getRuns(a, second.id);
        const [r3] = await getRuns(a, third.id);
        expect(r2!.startedAt).toBeGreaterThanOrEqual(r1!.finishedAt!);
        expect(r3!.startedAt).toBeGreaterThanOrEqual(r2!.finishedAt!);
      });
    });

    describe("hold, restart, cancel, delete", () => {
      test("hold: stays pending until POST /start", async () => {
        const { id, admission } = await submitOk(a, commandSpec("echo", ["held"], { hold: true }));
        expect(admission).toBe("queued");
        const waited = await a.json("GET", `/api/v1/tasks/${id}/wait?timeoutMs=50`);
        expect(waited.body.task.status).toEqual({ phase: "pending", attempt: 0 });
        expect(waited.body.task.spec.hold).toBe(true);
        expect(await getRuns(a, id)).toEqual([]);
        const started = await a.json("POST", `/api/v1/tasks/${id}/start`);
        expect(started.status).toBe(200);
        expect(started.body.task.metadata.id).toBe(id);
        const task = await waitTerminal(a, id);
        expect(task.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
        // starting a task that is not held changes nothing
        const again = await a.json("POST", `/api/v1/tasks/${id}/start`);
        expect(again).toEqual({ status: 200, body: { task } });
      });

      test("restart of a terminal task adds a new attempt and keeps the history", async () => {
        const counter = outFile("restart");
        const script = `n=$(cat ${counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${counter}; echo "run $n"; [ $n -ge 2 ]`;
        const { id } = await submitOk(a, bashSpec(script));
        expect((await waitTerminal(a, id)).status).toEqual({ phase: "failed", attempt: 1, exitCode: 1, error: "exit code 1" });
        const r = await a.json("POST", `/api/v1/tasks/${id}/restart`);
        expect(r.status).toBe(200);
        expect(r.body.task.metadata.id).toBe(id);
        expect(["pending", "running"]).toContain(r.body.task.status.phase);
        const task = await waitTerminal(a, id);
        expect(task.status).toEqual({ phase: "succeeded", attempt: 2, exitCode: 0 });
        expect(await getRuns(a, id)).toEqual([
          { attempt: 1, phase: "failed", startedAt: expect.any(Number), finishedAt: expect.any(Number), exitCode: 1, error: "exit code 1" },
          { attempt: 2, phase: "succeeded", startedAt: expect.any(Number), finishedAt: expect.any(Number), exitCode: 0 },
        ]);
      });

      test("restart of a task that is not terminal is refused", async () => {
        const f = fifo("restart-live");
        const { id } = await submitOk(a, blockSpec(f, "live"));
        await waitForPid(a, id);
        const r = await a.json("POST", `/api/v1/tasks/${id}/restart`);
        expect(r).toEqual({ status: 400, body: { error: "InvalidRequest", message: `task ${id} is not terminal; only a terminal task can be restarted` } });
        await release(f);
        await waitTerminal(a, id);
      });

      test("cancel during a run kills it: phase canceled, no more attempts", async () => {
        const f = fifo("cancel-run");
        const { id } = await submitOk(a, blockSpec(f, "c", "", { restart: { type: "onFailure" }, backoff: fastBackoff }));
        const pid = await waitForPid(a, id);
        const r = await a.json("POST", `/api/v1/tasks/${id}/cancel`);
        expect(r.status).toBe(200);
        expect(r.body.task).toEqual({ metadata: { ...meta, id }, spec: expect.any(Object), status: { phase: "canceled", attempt: 1, error: "canceled" } });
        expect(processGone(pid)).toBe(true);
        expect(await getRuns(a, id)).toEqual([
          { attempt: 1, phase: "canceled", startedAt: expect.any(Number), finishedAt: expect.any(Number), error: "canceled" },
        ]);
        // canceling a terminal task answers it unchanged
        expect(await a.json("POST", `/api/v1/tasks/${id}/cancel`)).toEqual({ status: 200, body: { task: r.body.task } });
      });

      test("cancel while queued behind another task of the slot", async () => {
        const f = fifo("cancel-queued");
        const slot = "cancel-queued-slot";
        const first = await submitOk(a, blockSpec(f, "first", "", { slot }));
        await waitForPid(a, first.id);
        const second = await submitOk(a, commandSpec("true", [], { slot, admission: "queue" }));
        expect(second.admission).toBe("queued");
        const r = await a.json("POST", `/api/v1/tasks/${second.id}/cancel`);
        expect(r.body.task.status).toEqual({ phase: "canceled", attempt: 0, error: "canceled" });
        await release(f);
        expect((await waitTerminal(a, first.id)).status.phase).toBe("succeeded");
        expect((await getTask(a, second.id)).status).toEqual({ phase: "canceled", attempt: 0, error: "canceled" });
        expect(await getRuns(a, second.id)).toEqual([]);
      });

      test("cancel during backoff", async () => {
        const spec = bashSpec("exit 2", { restart: { type: "onFailure" }, backoff: { jitter: "none", firstMs: 60_000, maxMs: 60_000, factor: 1 } });
        const { id } = await submitOk(a, spec);
        const pending = await waitForState(a, id, (t) => t.status.phase === "pending" && t.status.attempt === 1);
        expect(pending.status).toEqual({ phase: "pending", attempt: 1, exitCode: 2, error: "exit code 2" });
        const r = await a.json("POST", `/api/v1/tasks/${id}/cancel`);
        expect(r.body.task.status).toEqual({ phase: "canceled", attempt: 1, exitCode: 2, error: "canceled" });
        expect((await getRuns(a, id)).map((x) => x.phase)).toEqual(["failed"]);
      });

      test("delete of a running task kills it and purges task, runs and logs", async () => {
        const f = fifo("delete");
        const { id } = await submitOk(a, blockSpec(f, "d", "", { slot: "delete-slot" }));
        const pid = await waitForPid(a, id);
        const r = await a.request("DELETE", `/api/v1/tasks/${id}`);
        expect(r.status).toBe(204);
        expect(processGone(pid)).toBe(true);
        for (const path of [`/api/v1/tasks/${id}`, `/api/v1/tasks/${id}/runs`, `/api/v1/tasks/${id}/logs`]) {
          expect(await a.json("GET", path)).toEqual({ status: 404, body: { error: "TaskNotFound", message: `task ${id} not found` } });
        }
        expect((await a.json("GET", "/api/v1/tasks?slot=delete-slot")).body).toEqual({ tasks: [], total: 0 });
        expect((await a.request("DELETE", `/api/v1/tasks/${id}`)).status).toBe(204);
        // the slot is free again
        const next = await submitOk(a, commandSpec("true", [], { slot: "delete-slot", admission: "dropIfRunning" }));
        expect(next.admission).toBe("started");
      });
    });

    describe("bounded slot queue (--max-queue 1)", () => {
      test("a full queue answers 503 Unavailable", async () => {
        await using b = await startAgent({ args: ["--max-queue", "1", ...spawnArgs] });
        using d = tempDir();
        const f = makeFifo(d.path, "q");
        const slot = "full";
        const first = await submitOk(b, blockSpec(f, "first", "", { slot }));
        await waitForPid(b, first.id);
        const second = await submitOk(b, commandSpec("true", [], { slot, admission: "queue" }));
        expect(second.admission).toBe("queued");
        const third = await submit(b, commandSpec("true", [], { slot, admission: "queue" }));
        expect(third).toEqual({ status: 503, body: { error: "Unavailable", message: "queue of slot full is full (1 tasks)" } });
        // other slots are unaffected
        expect((await submitOk(b, commandSpec("true"))).admission).toBe("started");
        // releasing a held task or restarting a terminal one into the full queue is refused too
        const held = await submitOk(b, commandSpec("true", [], { slot, admission: "queue", hold: true }));
        expect(await b.json("POST", `/api/v1/tasks/${held.id}/start`)).toEqual(third);
        expect((await getTask(b, held.id)).status).toEqual({ phase: "pending", attempt: 0 });
        await release(f);
        expect((await waitTerminal(b, second.id)).status.phase).toBe("succeeded");
        // with room again the held task can start
        expect((await b.json("POST", `/api/v1/tasks/${held.id}/start`)).status).toBe(200);
        expect((await waitTerminal(b, held.id)).status.phase).toBe("succeeded");
      });

      test("restarting a terminal task into a full queue answers 503", async () => {
        await using b = await startAgent({ args: ["--max-queue", "1", ...spawnArgs] });
        using d = tempDir();
        const f = makeFifo(d.path, "q");
        const slot = "full2";
        const old = await submitOk(b, commandSpec("true", [], { slot, admission: "queue" }));
        await waitTerminal(b, old.id);
        const first = await submitOk(b, blockSpec(f, "first", "", { slot, admission: "queue" }));
        await waitForPid(b, first.id);
        await submitOk(b, commandSpec("true", [], { slot, admission: "queue" }));
        expect(await b.json("POST", `/api/v1/tasks/${old.id}/restart`)).toEqual({
          status: 503,
          body: { error: "Unavailable", message: `queue of slot ${slot} is full (1 tasks)` },
        });
        expect((await getTask(b, old.id)).status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
        await release(f);
      });
    });

    describe("global concurrency (--max-concurrent 1)", () => {
      test("waiting tasks run by priority, then submission order; no priority is 5", async () => {
        await using b = await startAgent({ args: ["--max-concurrent", "1", ...spawnArgs] });
        using d = tempDir();
        const f = makeFifo(d.path, "busy");
        const out = join(d.path, "order.out");
        const busy = await submitOk(b, blockSpec(f, "busy", out));
        expect(busy.admission).toBe("started");
        await waitForPid(b, busy.id);
        const step = (name: string, priority?: number) =>
          bashSpec(`echo "${name}" >> ${out}`, priority === undefined ? {} : { priority });
        // A 4 and a 5 submitted before the task without priority, a 5 after it: only 5 puts it between the two 5s.
        const queued = [];
        for (const [name, priority] of [["low1", 1], ["five1", 5], ["four", 4], ["none"], ["five2", 5], ["high", 9], ["low2", 1]] as const) {
          queued.push(await submitOk(b, step(name, priority)));
        }
        for (const t of queued) {
          expect(t.admission).toBe("queued");
          expect((await getTask(b, t.id)).status).toEqual({ phase: "pending", attempt: 0 });
        }
        await release(f);
        for (const t of [busy, ...queued]) expect((await waitTerminal(b, t.id)).status.phase).toBe("succeeded");
        expect(lines(out)).toEqual(["start busy", "end busy", "high", "five1", "none", "five2", "four", "low1", "low2"]);
      });
    });

    describe("agent shutdown", () => {
      test("stopping the agent stops running tasks; no child is left", async () => {
        const b = await startAgent({ args: spawnArgs });
        using d = tempDir();
        const f = makeFifo(d.path, "shutdown");
        const { id } = await submitOk(b, blockSpec(f, "s"));
        const pid = await waitForPid(b, id);
        expect(processGone(pid)).toBe(false);
        await b[Symbol.asyncDispose]();
        expect(() => process.kill(pid, 0)).toThrow();
      });
    });
  });
}
