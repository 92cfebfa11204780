/** The read and write commands against a real agent, human and `--json` output. */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { spawnTasklane, tasklane } from "./cli-process.ts";

// Each case spawns a few CLI processes; on a loaded machine that takes a while (never sleeps).
setDefaultTimeout(20_000);

let agent: TestAgent;
let server: string;
beforeAll(async () => {
  // best-effort: the resource flags must reach the spec even on hosts that cannot enforce them.
  agent = await startAgent({ args: ["--resource-limits", "best-effort", "--max-concurrent", "64"] });
  server = agent.url;
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
});

const slot = () => `cli-${crypto.randomUUID().slice(0, 8)}`;
const cli = (...args: string[]) => tasklane(args, { server });

async function submit(...args: string[]): Promise<string> {
  const r = await cli("submit", ...args);
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toMatch(/^tsk_[0-9A-Z]{26}\n$/);
  return r.stdout.trim();
}

async function waitDone(id: string): Promise<void> {
  const r = await agent.json("GET", `/api/v1/tasks/${id}/wait?timeoutMs=10000`);
  expect(r.status).toBe(200);
}

describe("submit", () => {
  test.concurrent("every spec flag lands in the spec", async () => {
    const s = slot();
    const r = await cli(
      "submit", "--json", "--hold", "--slot", s, "--timeout", "30s", "--restart", "always", "--restart-interval", "5s",
      "--backoff-jitter", "equal", "--backoff-first", "2s", "--backoff-max", "1m", "--backoff-factor", "1.5",
      "--admission", "replace", "--env", "A=1", "-e", "B=x=y", "--cwd", "/tmp", "--label", "team=edge", "-l", "tier=1",
      "--max-attempts", "3", "--kill-grace", "2s", "--priority", "7", "--no-fail-on-non-zero",
      "--memory", "256MiB", "--cpu-millis", "500", "--pids", "64", "--", "echo", "hello", "world",
    );
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as { task_id: string; admission: string };
    expect(out.task_id).toMatch(/^tsk_/);
    const got = await cli("get", "--json", out.task_id);
    expect(got.exitCode).toBe(0);
    const task = JSON.parse(got.stdout) as { spec: unknown; status: { phase: string } };
    expect(task.status.phase).toBe("pending");
    expect(task.spec).toEqual({
      slot: s,
      kind: { subprocess: { mode: { command: { command: "echo", args: ["hello", "world"] } }, env: [{ key: "A", value: "1" }, { key: "B", value: "x=y" }], cwd: "/tmp", failOnNonZero: false } },
      timeout: 30_000,
      restart: { type: "always", intervalMs: 5000 },
      backoff: { jitter: "equal", firstMs: 2000, maxMs: 60_000, factor: 1.5 },
      admission: "replace",
      labels: { team: "edge", tier: "1" },
      maxAttempts: 3,
      killGraceMs: 2000,
      priority: 7,
      hold: true,
      resources: { memoryBytes: 256 * 1024 * 1024, cpuMillis: 500, pids: 64 },
    });
    expect((await cli("rm", out.task_id)).exitCode).toBe(0);
  });

  test.concurrent("prints the id; the command may follow the flags without --", async () => {
    const id = await submit("--slot", slot(), "echo", "-n", "hi");
    await waitDone(id);
    const logs = await cli("logs", id);
    expect(logs.stdout).toBe("hi\n");
  });

  test.concurrent("--script - reads the script from stdin with a runtime", async () => {
    const r = await tasklane(["run", "--script", "-", "--runtime", "bash", "--", "x"], { server, stdin: 'echo "from stdin $1"\n' });
    expect(r).toEqual({ exitCode: 0, stdout: "from stdin x\n", stderr: "" });
  });
});

describe("ls", () => {
  test.concurrent("table with ID, SLOT, PHASE, ATTEMPT, EXIT, AGE; filters; --json; -q", async () => {
    const s = slot();
    const ok = await submit("--slot", s, "--label", "kind=ok", "--", "true");
    await waitDone(ok);
    const bad = await submit("--slot", s, "--label", "kind=bad", "--", "sh", "-c", "exit 5");
    await waitDone(bad);

    const table = await cli("ls", "--slot", s);
    expect(table.exitCode).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]!.split(/\s+/)).toEqual(["ID", "SLOT", "PHASE", "ATTEMPT", "EXIT", "AGE"]);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 5))).toEqual([
      [bad, s, "failed", "1", "5"],
      [ok, s, "succeeded", "1", "0"],
    ]);

    const byStatus = await cli("ls", "--json", "--slot", s, "--status", "failed");
    const parsed = JSON.parse(byStatus.stdout) as { tasks: { metadata: { id: string } }[]; total: number };
    expect(parsed.total).toBe(1);
    expect(parsed.tasks.map((t) => t.metadata.id)).toEqual([bad]);

    expect((await cli("ls", "-q", "--slot", s, "--label", "kind=ok")).stdout).toBe(`${ok}\n`);
    const limited = await cli("ls", "--slot", s, "--limit", "1");
    expect(limited.stdout.trimEnd().split("\n")).toHaveLength(2);
    expect(limited.stderr).toBe("(1 of 2 tasks shown; use --limit or filters)\n");
  });

  test.concurrent("no tasks is said on stderr", async () => {
    expect(await cli("ls", "--slot", slot())).toEqual({ exitCode: 0, stdout: "", stderr: "no tasks\n" });
  });
});

describe("get, runs, logs", () => {
  test.concurrent("get shows the task; runs shows the attempts", async () => {
    const s = slot();
    const id = await submit("--slot", s, "--label", "team=edge", "--", "sh", "-c", "exit 3");
    await waitDone(id);
    const get = await cli("get", id);
    expect(get.exitCode).toBe(0);
    expect(get.stdout).toContain(`ID:`);
    expect(get.stdout).toMatch(new RegExp(`^ID:\\s+${id}$`, "m"));
    expect(get.stdout).toMatch(new RegExp(`^Slot:\\s+${s}$`, "m"));
    expect(get.stdout).toMatch(/^Phase:\s+failed$/m);
    expect(get.stdout).toMatch(/^Exit:\s+3$/m);
    expect(get.stdout).toMatch(/^Command:\s+sh -c 'exit 3'$/m);
    expect(get.stdout).toMatch(/^Labels:\s+team=edge$/m);

    const runs = await cli("runs", id);
    const rows = runs.stdout.trimEnd().split("\n");
    expect(rows[0]!.split(/\s+/)).toEqual(["ATTEMPT", "PHASE", "EXIT", "STARTED", "DURATION", "ERROR"]);
    expect(rows[1]!.split(/\s+/).slice(0, 3)).toEqual(["1", "failed", "3"]);
    const json = JSON.parse((await cli("runs", "--json", id)).stdout) as { attempt: number; phase: string; exitCode: number }[];
    expect(json.map(({ attempt, phase, exitCode }) => ({ attempt, phase, exitCode }))).toEqual([{ attempt: 1, phase: "failed", exitCode: 3 }]);
  });

  test.concurrent("logs without -f prints the retained output and exits; --after skips; --json parses", async () => {
    const id = await submit("--", "sh", "-c", "echo one; echo two >&2; echo three");
    await waitDone(id);
    const r = await cli("logs", id);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("one\nthree\n");
    expect(r.stderr).toMatch(/^tasklane: --- attempt 1 started ---\ntwo\ntasklane: --- attempt 1 exited 0 after \S+ ---\n$/);
    const events = (await cli("logs", "--json", id)).stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { id: number; type: string; line?: string });
    expect(events.map((e) => e.type)).toEqual(["runStarted", "chunk", "chunk", "chunk", "runFinished"]);
    // stdout and stderr may interleave either way; "three" follows "one" on stdout.
    const after = events.find((e) => e.line === "one")!.id;
    const rest = await cli("logs", "--after", String(after), id);
    expect(rest.stdout).toBe("three\n");
    expect((await cli("logs", "--after", String(events.at(-1)!.id), id)).stdout).toBe("");
  });

  test.concurrent("logs -f follows across a retry and shows both attempts", async () => {
    const id = await submit("--restart", "on-failure", "--max-attempts", "2", "--backoff-first", "300ms", "--backoff-jitter", "none", "--", "sh", "-c", "echo attempt output; exit 1");
    const r = await cli("logs", "-f", id);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("attempt output\nattempt output\n");
    expect(r.stderr).toMatch(
      /^tasklane: --- attempt 1 started ---\ntasklane: --- attempt 1 exited 1 after \S+ ---\ntasklane: --- attempt 2 started ---\ntasklane: --- attempt 2 exited 1 after \S+ ---\n$/,
    );
    const task = JSON.parse((await cli("get", "--json", id)).stdout) as { status: { phase: string; attempt: number } };
    expect(task.status).toMatchObject({ phase: "exhausted", attempt: 2 });
  });
});

describe("logs -f when the agent goes away", () => {
  test.concurrent("the stream ends before the task is terminal: exit 3 and a message, not success", async () => {
    const own = await startAgent({ persistent: true });
    let stopped = false;
    try {
      const id = (await tasklane(["submit", "--restart", "on-failure", "--", "sh", "-c", "echo started; exec sleep 60"], { server: own.url })).stdout.trim();
      await using follow = spawnTasklane(["logs", "-f", id], { server: own.url });
      await follow.stdout.until((t) => t.includes("started\n"));
      stopped = true;
      await own[Symbol.asyncDispose]();
      const r = await follow.result();
      expect(r.exitCode).toBe(3);
      expect(r.stdout).toBe("started\n");
      // Whether the stopping agent still answers the CLI's look at the task (its reads are served during the
      // stop's last second) or not decides the end of the message; either way the task did not finish.
      const last = r.stderr.trimEnd().split("\n").at(-1);
      const prefix = `tasklane: the agent at ${own.url} closed the log stream before task ${id} finished`;
      expect(last!.startsWith(prefix)).toBe(true);
      expect(last!.slice(prefix.length)).toMatch(/^(, and cannot be reached any more| \(it is (pending|running)\))$/);
    } finally {
      if (!stopped) await own[Symbol.asyncDispose]();
    }
  });
});

describe("cancel, rm, wait", () => {
  test.concurrent("cancel stops a running task; wait reports it and exits 1", async () => {
    const id = await submit("--kill-grace", "1s", "--", "sleep", "30");
    const c = await cli("cancel", id);
    expect(c).toEqual({ exitCode: 0, stdout: `${id} canceled\n`, stderr: "" });
    const w = await cli("wait", "--json", id);
    expect(w.exitCode).toBe(1);
    expect((JSON.parse(w.stdout) as { status: { phase: string } }).status.phase).toBe("canceled");
  });

  test.concurrent("wait: 0 when it succeeds, 1 when it fails, 124 when still running at --timeout", async () => {
    const ok = await submit("--", "true");
    const okWait = await cli("wait", ok);
    expect(okWait).toEqual({ exitCode: 0, stdout: `${ok} succeeded exit=0\n`, stderr: "" });

    const bad = await submit("--", "sh", "-c", "exit 7");
    const badWait = await cli("wait", bad);
    expect(badWait).toEqual({ exitCode: 1, stdout: `${bad} failed exit=7 (exit code 7)\n`, stderr: "" });

    const slow = await submit("--", "sleep", "30");
    const slowWait = await cli("wait", "--timeout", "150ms", slow);
    expect(slowWait).toEqual({ exitCode: 124, stdout: `${slow} running exit=-\n`, stderr: "" });
    expect((await cli("rm", slow)).exitCode).toBe(0);
  });

  test.concurrent("rm deletes tasks (idempotently) and prints their ids", async () => {
    const a = await submit("--", "true");
    const b = await submit("--", "true");
    await waitDone(a);
    const r = await cli("rm", "--json", a, b);
    expect(r).toEqual({ exitCode: 0, stdout: `${JSON.stringify({ deleted: [a, b], failed: [] })}\n`, stderr: "" });
    expect((await cli("get", a)).exitCode).toBe(1);
    expect(await cli("rm", a)).toEqual({ exitCode: 0, stdout: `${a}\n`, stderr: "" });
  });
});

describe("events, info", () => {
  test.concurrent("events prints one line per change, filtered by slot; Ctrl-C ends it", async () => {
    const s = slot();
    const first = await submit("--slot", s, "--", "true");
    await waitDone(first);
    await using watch = spawnTasklane(["events", "--json", "--slot", s], { server });
    await watch.stdout.until((t) => t.includes(`"phase":"succeeded"`));
    const second = await submit("--slot", s, "--", "sh", "-c", "exit 2");
    await watch.stdout.until((t) => t.includes(second) && t.includes(`"phase":"failed"`));
    await cli("rm", first);
    await watch.stdout.until((t) => t.includes(`"event":"deleted"`));
    watch.proc.kill("SIGINT");
    const r = await watch.result();
    expect(r.exitCode).toBe(130);
    const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { event: string; task?: { metadata: { id: string }; spec: { slot: string } }; taskId?: string });
    expect(lines.every((l) => l.event === "deleted" || l.task?.spec.slot === s)).toBe(true);
    expect(lines.at(-1)).toMatchObject({ event: "deleted", taskId: first });
    const ids = new Set(lines.flatMap((l) => (l.task ? [l.task.metadata.id] : [])));
    expect(ids).toEqual(new Set([first, second]));
  });

  test.concurrent("events human lines name id, slot and phase", async () => {
    const s = slot();
    const id = await submit("--slot", s, "--", "true");
    await waitDone(id);
    await using watch = spawnTasklane(["events", "--slot", s], { server });
    const text = await watch.stdout.until((t) => /succeeded/.test(t));
    expect(text).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  ${id}  ${s}  succeeded\\s+attempt=1  exit=0$`, "m"));
  });

  test.concurrent("info: human fields and JSON", async () => {
    const human = await cli("info");
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^server:\\s+${server}$`, "m"));
    expect(human.stdout).toMatch(/^name:\s+tasklane$/m);
    expect(human.stdout).toMatch(/^uptimeMs:\s+\S+$/m);
    const json = JSON.parse((await cli("info", "--json")).stdout) as { name: string; version: string };
    expect(json.name).toBe("tasklane");
    expect(typeof json.version).toBe("string");
  });

  test.concurrent("global flags before the command: the client, not the agent", async () => {
    // No TASKLANE_SERVER: the agent is named by the leading --server only.
    const r = await tasklane(["--server", server, "--json", "info"]);
    expect(r.exitCode).toBe(0);
    expect((JSON.parse(r.stdout) as { name: string }).name).toBe("tasklane");
  });
});
