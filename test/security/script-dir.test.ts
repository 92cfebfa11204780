/**
 * Without a store (`--data-dir :memory:`) script bodies go to a temp dir. Its
 * name must not be one another local user can make first: an agent that
 * wrote into such a dir would run whatever its owner swapped in.
 */
import { expect, test } from "bun:test";
import { mkdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { bashSpec, startAgent } from "../helpers/start-agent.ts";

test("a :memory: agent writes scripts into a fresh private dir, never into one made before it started", async () => {
  // The name the dir used to have (the agent's pid, here the test process's), made beforehand as a stranger would.
  const squatted = join(tmpdir(), `tasklane-scripts-${process.pid}`);
  mkdirSync(squatted, { recursive: true, mode: 0o777 });
  try {
    await using a = await startAgent();
    const res = await a.json("POST", "/api/v1/tasks?wait=true", { spec: bashSpec('printf "%s" "$0"') });
    expect(res.body.task.status.phase).toBe("succeeded");
    const logs = await (await a.request("GET", `/api/v1/tasks/${res.body.task.metadata.id}/logs?follow=false`)).text();
    const scriptPath = /"line":"([^"]+)"/.exec(logs)?.[1];
    expect(scriptPath).toBeDefined();
    const dir = dirname(scriptPath!);
    expect(dir).not.toBe(squatted);
    expect(dirname(dir)).toBe(tmpdir());
    expect(basename(dir)).toMatch(new RegExp(`^tasklane-scripts-${process.pid}-.+`));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  } finally {
    rmSync(squatted, { recursive: true, force: true });
  }
});
