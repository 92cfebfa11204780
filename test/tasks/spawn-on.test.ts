/**
 * `--spawn-on main|thread`: the same task semantics whichever thread spawns
 * the tasks (the supervisor suite runs with the default, `main`; the runner
 * thread itself is tested in test/runner/run-thread.test.ts).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { ConfigError, parseConfig } from "../../src/config.ts";
import { processGone } from "../helpers/process.ts";
import { bashSpec, startAgent } from "../helpers/start-agent.ts";
import { getRuns, submitOk, tempDir, waitForLine, waitTerminal } from "../helpers/task-control.ts";

const dir = tempDir("tasklane-spawn-on-");
afterAll(() => dir[Symbol.dispose]());

describe("--spawn-on", () => {
  test("defaults to main; main and thread are accepted, anything else is a clear error", () => {
    expect(parseConfig([], {}).spawnOn).toBe("main");
    expect(parseConfig(["--spawn-on", "thread"], {}).spawnOn).toBe("thread");
    expect(parseConfig([], { TASKLANE_SPAWN_ON: "thread" }).spawnOn).toBe("thread");
    expect(() => parseConfig(["--spawn-on", "worker"], {})).toThrow(ConfigError);
    expect(() => parseConfig(["--spawn-on", "worker"], {})).toThrow("--spawn-on: must be one of main, thread");
  });

  for (const spawnOn of ["thread", "main"] as const) {
    describe(spawnOn, () => {
      test("output, exit code and run history", async () => {
        await using a = await startAgent({ args: ["--spawn-on", spawnOn] });
        const { id } = await submitOk(a, bashSpec('echo "to out"; echo "to err" >&2; exit 3'));
        const task = await waitTerminal(a, id);
        expect(task.status).toEqual({ phase: "failed", attempt: 1, exitCode: 3, error: "exit code 3" });
        expect(await getRuns(a, id)).toEqual([
          { attempt: 1, phase: "failed", startedAt: expect.any(Number), finishedAt: expect.any(Number), exitCode: 3, error: "exit code 3" },
        ]);
        const logs = await (await fetch(`${a.url}/api/v1/tasks/${id}/logs?follow=false`)).text();
        expect(logs).toContain('"stream":"stdout","seq":0');
        expect(logs).toContain('"line":"to out"');
        expect(logs).toContain('"line":"to err"');
      });

      test("cancel stops the task's whole process group", async () => {
        await using a = await startAgent({ args: ["--spawn-on", spawnOn] });
        const { id } = await submitOk(a, bashSpec('sleep 300 & echo "child=$!"; wait'));
        const child = Number((await waitForLine(a, id, (l) => l.startsWith("child="))).slice(6));
        expect(processGone(child)).toBe(false);
        const res = await a.json("POST", `/api/v1/tasks/${id}/cancel`);
        expect(res.status).toBe(200);
        expect((await waitTerminal(a, id)).status.phase).toBe("canceled");
        expect(processGone(child)).toBe(true);
      });

      test("a task that cannot start fails with the spawn error", async () => {
        await using a = await startAgent({ args: ["--spawn-on", spawnOn] });
        const { id } = await submitOk(a, {
          slot: "missing",
          kind: { subprocess: { mode: { command: { command: `${dir.path}/no-such-program`, args: [] } } } },
        });
        const task = await waitTerminal(a, id);
        expect(task.status.phase).toBe("failed");
        expect(task.status.error).toContain("no-such-program");
      });
    });
  }
});
