import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processGone } from "../helpers/process.ts";
import { binaryPath, startBinary } from "./binary.ts";

const pidAlive = (pid: number) => !processGone(pid);

describe("compiled binary", () => {
  test("--version and --help", async () => {
    const bin = await binaryPath();
    const v = Bun.spawnSync([bin, "--version"]);
    expect(v.exitCode).toBe(0);
    expect(v.stdout.toString()).toMatch(/^tasklane \d+\.\d+\.\d+/);
    const h = Bun.spawnSync([bin, "serve", "--help"]);
    expect(h.exitCode).toBe(0);
    expect(h.stdout.toString()).toContain("--http-addr");
  });

  test("a bad flag is a one-line error naming it, exit 2", async () => {
    const bin = await binaryPath();
    const r = Bun.spawnSync([bin, "serve", "--max-concurrent", "zero"]);
    expect(r.exitCode).toBe(2);
    const err = r.stderr.toString().trim();
    expect(err.split("\n")).toHaveLength(1);
    expect(err).toContain("--max-concurrent");
    expect(err).toContain('"zero"');
  });

  test("serves a task end to end and shuts down on SIGTERM leaving no child", async () => {
    // A stray .env and bunfig.toml in the working directory must be ignored.
    const cwd = mkdtempSync(join(tmpdir(), "tasklane-cwd-"));
    writeFileSync(join(cwd, ".env"), "TASKLANE_HTTP_ADDR=not-an-address\nTASKLANE_MAX_CONCURRENT=oops\n");
    writeFileSync(join(cwd, "bunfig.toml"), "this is [not toml\n");
    const agent = await startBinary({ cwd });
    try {
      const submit = await fetch(`${agent.url}/api/v1/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          spec: {
            slot: "e2e",
            kind: { subprocess: { mode: { command: { command: "echo", args: ["hello world"] } }, env: [], failOnNonZero: true } },
            timeout: 30000,
            restart: { type: "never" },
            backoff: { jitter: "full", firstMs: 1000, maxMs: 10000, factor: 2.0 },
            admission: "dropIfRunning",
          },
        }),
      });
      expect(submit.status).toBe(201);
      const { task_id, admission } = (await submit.json()) as { task_id: string; admission: string };
      expect(task_id).toMatch(/^tsk_[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(admission).toBe("started");
      const waited = (await (await fetch(`${agent.url}/api/v1/tasks/${task_id}/wait?timeoutMs=20000`)).json()) as any;
      expect(waited.task.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
      const logs = await (await fetch(`${agent.url}/api/v1/tasks/${task_id}/logs?follow=false`)).text();
      expect(logs).toContain('"line":"hello world"');

      // A long-running task whose child ignores SIGTERM: shutdown must still leave nothing behind.
      const script = "trap '' TERM; sleep 300 & echo child=$!; wait";
      const long = await fetch(`${agent.url}/api/v1/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          spec: { slot: "long", kind: { subprocess: { mode: { script: { runtime: "bash", body: btoa(script) } } } }, killGraceMs: 200 },
        }),
      });
      const longId = ((await long.json()) as { task_id: string }).task_id;
      const res = await fetch(`${agent.url}/api/v1/tasks/${longId}/logs`);
      const reader = res.body!.getReader();
      let text = "";
      let childPid = 0;
      while (!childPid) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
        const m = /child=(\d+)/.exec(text);
        if (m) childPid = Number(m[1]);
      }
      void reader.cancel();
      expect(childPid).toBeGreaterThan(0);
      expect(pidAlive(childPid)).toBe(true);
      expect(await agent.stop("SIGTERM")).toBe(0);
      expect(pidAlive(childPid)).toBe(false);
    } finally {
      await agent[Symbol.asyncDispose]();
    }
  });
});
