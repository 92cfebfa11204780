/** `tasklane run` against a real agent: exit codes, live ordered output, retries, Ctrl-C. */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { waitForState } from "../helpers/task-control.ts";
import { spawnTasklane, tasklane } from "./cli-process.ts";

const MAIN = join(import.meta.dir, "../../src/main.ts");

// Each case spawns a few CLI processes; on a loaded machine that takes a while (never sleeps).
setDefaultTimeout(20_000);

let agent: TestAgent;
let server: string;
const dir = mkdtempSync(join(tmpdir(), "tasklane-cli-run-"));
beforeAll(async () => {
  agent = await startAgent({ args: ["--max-concurrent", "64"] });
  server = agent.url;
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

const slot = () => `cli-run-${crypto.randomUUID().slice(0, 8)}`;

describe("tasklane run", () => {
  test.concurrent("exit 0 and the output of a succeeding command", async () => {
    const r = await tasklane(["run", "--", "echo", "hello", "world"], { server });
    expect(r).toEqual({ exitCode: 0, stdout: "hello world\n", stderr: "" });
  });

  test.concurrent("exit code N of a failing command, output split by stream", async () => {
    const r = await tasklane(["run", "--", "sh", "-c", "echo out; echo err >&2; exit 3"], { server });
    expect(r).toEqual({ exitCode: 3, stdout: "out\n", stderr: "err\n" });
  });

  test.concurrent("death by signal: 128 + signal number, with the reason on stderr", async () => {
    const r = await tasklane(["run", "--", "sh", "-c", "kill -9 $$"], { server });
    expect(r.exitCode).toBe(137);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^tasklane: task tsk_\w+ failed: killed by signal SIGKILL\n$/);
  });

  test.concurrent("a timed-out task exits 124", async () => {
    const r = await tasklane(["run", "--timeout", "200ms", "--kill-grace", "0", "--", "sleep", "30"], { server });
    expect(r.exitCode).toBe(124);
    expect(r.stderr).toMatch(/^tasklane: task tsk_\w+ timeout: timed out after 200 ms\n$/);
  });

  test.concurrent("many lines arrive complete and in order on the right stream", async () => {
    const n = 300;
    const script = `for i in $(seq 1 ${n}); do echo "out $i"; echo "err $i" >&2; done`;
    const r = await tasklane(["run", "--", "sh", "-c", script], { server });
    const lines = (p: string) => Array.from({ length: n }, (_, i) => `${p} ${i + 1}\n`).join("");
    expect(r).toEqual({ exitCode: 0, stdout: lines("out"), stderr: lines("err") });
  });

  test.concurrent("output streams live, before the task finishes", async () => {
    const gate = join(dir, `gate-${crypto.randomUUID()}`);
    const script = `echo first; while [ ! -e '${gate}' ]; do sleep 0.02; done; echo second`;
    await using cli = spawnTasklane(["run", "--", "sh", "-c", script], { server });
    await cli.stdout.until((t) => t.includes("first\n"));
    expect(cli.stdout.text()).toBe("first\n");
    await Bun.write(gate, "");
    expect(await cli.result()).toEqual({ exitCode: 0, stdout: "first\nsecond\n", stderr: "" });
  });

  test.concurrent("output of every attempt, in order, across retries", async () => {
    const r = await tasklane(
      ["run", "--restart", "on-failure", "--max-attempts", "2", "--backoff-first", "10ms", "--backoff-jitter", "none", "--", "sh", "-c", "echo try; echo oops >&2; exit 4"],
      { server },
    );
    expect(r).toEqual({ exitCode: 4, stdout: "try\ntry\n", stderr: "oops\noops\n" });
  });

  test.concurrent("script mode: --script FILE with args after --", async () => {
    const file = join(dir, `s-${crypto.randomUUID()}.sh`);
    await Bun.write(file, 'echo "script got $1 $2"\n');
    const r = await tasklane(["run", "--script", file, "--", "a", "b"], { server });
    expect(r).toEqual({ exitCode: 0, stdout: "script got a b\n", stderr: "" });
  });

  test.concurrent("Ctrl-C cancels the task and exits 130", async () => {
    const s = slot();
    await using cli = spawnTasklane(["run", "--slot", s, "--kill-grace", "1s", "--", "sh", "-c", "echo started; exec sleep 30"], { server });
    await cli.stdout.until((t) => t.includes("started\n"));
    cli.proc.kill("SIGINT");
    const r = await cli.result();
    expect(r.exitCode).toBe(130);
    expect(r.stdout).toBe("started\n");
    expect(r.stderr).toMatch(/^tasklane: task tsk_\w+ canceled\n$/);
    const list = await agent.json<{ tasks: { metadata: { id: string } }[] }>("GET", `/api/v1/tasks?slot=${s}`);
    const id = list.body.tasks[0]!.metadata.id;
    const waited = await agent.json<{ task: { status: { phase: string } } }>("GET", `/api/v1/tasks/${id}/wait?timeoutMs=10000`);
    expect(waited.body.task.status.phase).toBe("canceled");
  });

  test.concurrent("canceled by someone else while waiting to retry: exit 1 and a notice, not the failed attempt's code", async () => {
    const s = slot();
    await using cli = spawnTasklane(["run", "--slot", s, "--restart", "on-failure", "--backoff-first", "1h", "--backoff-jitter", "none", "--", "sh", "-c", "echo try; exit 7"], { server });
    await cli.stdout.until((t) => t.includes("try\n"));
    const list = await agent.json<{ tasks: { metadata: { id: string } }[] }>("GET", `/api/v1/tasks?slot=${s}`);
    const id = list.body.tasks[0]!.metadata.id;
    // Attempt 1 has failed and the task waits out its hour of backoff.
    await waitForState(agent, id, (t) => t.status.phase === "pending" && t.status.attempt === 1);
    expect((await agent.json("POST", `/api/v1/tasks/${id}/cancel`)).status).toBe(200);
    const r = await cli.result();
    expect(r).toEqual({ exitCode: 1, stdout: "try\n", stderr: `tasklane: task ${id} canceled: canceled\n` });
  });

  test.concurrent("--json: log events as JSON lines, then the final task", async () => {
    const r = await tasklane(["run", "--json", "--", "sh", "-c", "echo hi; exit 2"], { server });
    expect(r.exitCode).toBe(2);
    const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.type ?? "task")).toEqual(["runStarted", "chunk", "runFinished", "task"]);
    expect(lines[1]).toMatchObject({ stream: "stdout", line: "hi", attempt: 1 });
    expect(lines[3]).toMatchObject({ task: { status: { phase: "failed", exitCode: 2 } } });
  });

  test.concurrent("exhausted: the exit status of the last attempt, also 0; 124 when it timed out (no doubled phase)", async () => {
    const [ok, timedOut] = await Promise.all([
      tasklane(["run", "--restart", "always", "--restart-interval", "0", "--max-attempts", "2", "--", "echo", "ok"], { server }),
      tasklane(["run", "--restart", "on-failure", "--max-attempts", "2", "--backoff-first", "10ms", "--timeout", "200ms", "--kill-grace", "0", "--", "sleep", "30"], { server }),
    ]);
    expect(ok).toEqual({ exitCode: 0, stdout: "ok\nok\n", stderr: "" });
    expect(timedOut.exitCode).toBe(124);
    expect(timedOut.stderr).toMatch(/^tasklane: task tsk_\w+ exhausted: 2 of 2 attempts used \(last: timed out after 200 ms\)\n$/);
  });

  test.concurrent("stdout closed (run … | head -1): the task is canceled and run exits 141", async () => {
    const s = slot();
    const cmd = [process.execPath, MAIN, "run", "--slot", s, "--kill-grace", "1s", "--", "sh", "-c", "while true; do echo x; sleep 0.05; done"]
      .map((w) => `'${w.replaceAll("'", `'\\''`)}'`)
      .join(" ");
    const proc = Bun.spawn(["bash", "-c", `${cmd} | head -1; echo "run exited \${PIPESTATUS[0]}" >&2`], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", TASKLANE_SERVER: server },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(out).toBe("x\n");
    expect(err).toMatch(/^tasklane: stdout was closed; task tsk_\w+ canceled\nrun exited 141\n$/);
    const list = await agent.json<{ tasks: { status: { phase: string } }[] }>("GET", `/api/v1/tasks?slot=${s}`);
    expect(list.body.tasks.map((t) => t.status.phase)).toEqual(["canceled"]);
  });
});

describe("output the agent did not retain", () => {
  // A tiny retention: a burst of lines overruns it before anyone can read them.
  let small: TestAgent;
  beforeAll(async () => {
    small = await startAgent({ args: ["--max-concurrent", "8", "--log-retain", "50"] });
  });
  afterAll(async () => {
    await small?.[Symbol.asyncDispose]();
  });

  test.concurrent("run: every event is either printed or counted in a notice on stderr", async () => {
    const r = await tasklane(["run", "--json", "--", "seq", "1", "3000"], { server: small.url });
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { type?: string; skipped?: number; line?: string });
    const events = lines.slice(0, -1);
    const skipped = events.filter((e) => e.type === "lagged").map((e) => e.skipped!);
    // runStarted + 3000 chunks + runFinished: none goes missing without being counted.
    expect(events.filter((e) => e.type !== "lagged").length + skipped.reduce((a, b) => a + b, 0)).toBe(3002);
    expect(r.stderr).toBe(skipped.map((n) => `tasklane: ${n} lines of output were not retained by the agent\n`).join(""));
    const chunks = events.filter((e) => e.type === "chunk").map((e) => Number(e.line));
    expect(chunks.at(-1)).toBe(3000);
    expect(chunks).toEqual([...chunks].sort((a, b) => a - b));
  });

  test.concurrent("logs: output dropped before it was asked for is reported", async () => {
    const id = (await tasklane(["submit", "--", "seq", "1", "3000"], { server: small.url })).stdout.trim();
    await small.json("GET", `/api/v1/tasks/${id}/wait?timeoutMs=10000`);
    const r = await tasklane(["logs", id], { server: small.url });
    expect(r.exitCode).toBe(0);
    // 3002 events, the last 50 retained (49 lines and the end marker; the start marker is gone).
    expect(r.stderr).toBe("tasklane: 2952 lines of output were not retained by the agent\ntasklane: --- attempt 1 exited 0 ---\n");
    expect(r.stdout).toBe(Array.from({ length: 49 }, (_, i) => `${2952 + i}\n`).join(""));
  });
});

