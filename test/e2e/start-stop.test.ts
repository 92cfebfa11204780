/**
 * The compiled binary's start and stop around its edges: a SIGTERM while it
 * starts is a graceful stop (the handlers are in place before the start), a
 * second agent on an HTTP port in use is refused (no SO_REUSEPORT sharing),
 * and a listen failure names the flag and the address.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { failedStart, processGone, readUntil } from "../helpers/process.ts";
import { readSse } from "../helpers/sse.ts";
import { binaryPath, startBinary, submitTo, tempDirs, type RunningBinary } from "./binary.ts";

const newDir = tempDirs("tasklane-stop-");

const ARGS = ["serve", "--grpc-addr", "127.0.0.1:0", "--data-dir", ":memory:"];

describe("compiled binary: start and stop", () => {
  test("SIGTERM as soon as it announces itself (a supervisor's stop) is a graceful stop, every time: exit 0", async () => {
    const bin = await binaryPath();
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) {
      const proc = Bun.spawn([bin, ...ARGS, "--http-addr", "127.0.0.1:0"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      await readUntil(proc.stdout, (out) => out.includes("tasklane listening"));
      proc.kill("SIGTERM");
      const stderr = await new Response(proc.stderr).text();
      const code = await proc.exited;
      outcomes.push(`exit ${code} signal ${proc.signalCode} ${stderr.includes('"msg":"tasklane stopped"') ? "stopped" : "no stop line"}`);
    }
    expect(outcomes).toEqual(Array(20).fill("exit 0 signal null stopped"));
  });

  test("a store that cannot take the start's writes (a file size limit): exit 1, the reason as the last line", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "tasklane-fsize-"));
    try {
      const first = await startBinary({ dataDir });
      expect(await first.stop()).toBe(0);
      const bin = await binaryPath();
      // SIGXFSZ ignored: a write past 4 KiB fails with EFBIG instead of killing the process.
      const { code, lastLine } = await failedStart(["bash", "-c", `trap '' XFSZ; ulimit -f 4; exec "$0" serve --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --data-dir "$1"`, bin, dataDir]);
      expect(code).toBe(1);
      expect(lastLine).toStartWith("tasklane: cannot start: the store cannot be written (");
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test("a second agent on an HTTP port in use exits 1 naming the flag and the address; the first keeps serving", async () => {
    await using first = await startBinary();
    const addr = first.url.replace("http://", "");
    const bin = await binaryPath();
    const second = Bun.spawn([bin, ...ARGS, "--http-addr", addr], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => second.kill("SIGKILL"), 10_000);
    const [code, stderr] = await Promise.all([second.exited, new Response(second.stderr).text()]);
    clearTimeout(timer);
    expect(code).toBe(1);
    // The reason is the last line, after the agent's own log lines.
    expect(stderr.trimEnd().split("\n").at(-1)).toBe(`tasklane: cannot start: --http-addr cannot listen on ${addr}: EADDRINUSE`);
    // Every request still reaches the first agent (with SO_REUSEPORT the kernel would split them).
    const pids = new Set<number>();
    for (let i = 0; i < 20; i++) pids.add(((await (await fetch(`${first.url}/api/v1/info`)).json()) as { pid: number }).pid);
    expect([...pids]).toEqual([first.proc.pid]);
  });

  test("a start that fails on a port in use leaves the stored work as it was: the pending task is not started, no attempt is spent", async () => {
    const dataDir = newDir();
    const marks = newDir();
    // Each task leaves a mark when its command starts, then waits.
    const marking = (slot: string) => ({ slot, kind: { subprocess: { mode: { command: { command: "bash", args: ["-c", `touch ${marks}/${slot}; exec sleep 600`] } } } } });
    const first = await startBinary({ dataDir, args: ["--max-concurrent", "1"] });
    let second: string;
    try {
      await submitTo(first, marking("running"));
      second = await submitTo(first, marking("pending"));
      while (!existsSync(join(marks, "running"))) await Bun.sleep(5);
      expect(((await (await fetch(`${first.url}/api/v1/tasks/${second}`)).json()) as { task: { status: { phase: string } } }).task.status.phase).toBe("pending");
    } finally {
      expect(await first.stop()).toBe(0);
    }
    // Something else holds the gRPC port: the start fails after the store has been opened and recovered.
    await using busy = { listener: Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }), async [Symbol.asyncDispose]() { this.listener.stop(true); } };
    const busyAddr = `127.0.0.1:${busy.listener.port}`;
    const bin = await binaryPath();
    const { code, lastLine, stderr } = await failedStart([bin, "serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", busyAddr, "--data-dir", dataDir, "--max-concurrent", "1"]);
    expect(code).toBe(1);
    expect(lastLine).toBe(`tasklane: cannot start: --grpc-addr cannot listen on ${busyAddr}: EADDRINUSE`);
    // Before: recovery launched the pending task, and the failed start's stop recorded it failed ("interrupted: agent shut down").
    expect(existsSync(join(marks, "pending"))).toBe(false);
    expect(stderr).not.toContain('"phase":"running"');
    // The next start runs it as its first attempt, with no run before.
    await using again = await startBinary({ dataDir, args: ["--max-concurrent", "1"] });
    while (!existsSync(join(marks, "pending"))) await Bun.sleep(5);
    const { task } = (await (await fetch(`${again.url}/api/v1/tasks/${second}`)).json()) as { task: { status: { phase: string; attempt: number } } };
    expect([task.status.phase, task.status.attempt]).toEqual(["running", 1]);
    const runs = (await (await fetch(`${again.url}/api/v1/tasks/${second}/runs`)).json()) as { runs: { attempt: number; phase?: string; error?: string }[] };
    expect(runs.runs.map((r) => [r.attempt, r.error])).toEqual([[1, undefined]]);
  });

  /** A running task that ignores SIGTERM, as does the child it started; answers their pids once both run. */
  async function stubbornTask(agent: RunningBinary, killGraceMs: number): Promise<{ id: string; pids: number[] }> {
    const id = await submitTo(agent, {
      slot: "stubborn",
      kind: { subprocess: { mode: { command: { command: "bash", args: ["-c", 'trap "" TERM; (trap "" TERM; exec sleep 1000) & echo "pids $$ $!"; while :; do sleep 0.2; done'] } } } },
      killGraceMs,
    });
    const logs = await fetch(`${agent.url}/api/v1/tasks/${id}/logs`);
    for await (const e of readSse(logs)) {
      const m = e.event === "chunk" ? /^pids (\d+) (\d+)$/.exec(e.data.line) : null;
      if (m) return { id, pids: [Number(m[1]), Number(m[2])] }; // leaving the loop ends the stream
    }
    throw new Error("the task ended before it printed its pids");
  }

  /** Until the agent has logged its stop (the first signal was handled). */
  async function stopping(agent: RunningBinary): Promise<void> {
    while (!agent.stderr().includes('"msg":"tasklane stopping"')) {
      if (agent.proc.exitCode !== null || agent.proc.signalCode !== null) return;
      await Bun.sleep(5);
    }
  }

  test("a second SIGTERM or SIGINT during the stop kills the tasks at once; none is left running", async () => {
    for (const [first, second] of [["SIGTERM", "SIGTERM"], ["SIGINT", "SIGINT"], ["SIGTERM", "SIGINT"]] as const) {
      const dataDir = newDir();
      const agent = await startBinary({ dataDir });
      let pids: number[] = [];
      try {
        const task = await stubbornTask(agent, 600_000);
        pids = task.pids;
        agent.proc.kill(first);
        await stopping(agent);
        agent.proc.kill(second);
        // Before: the second signal ended the agent at once (143 / 130) and both processes ran on.
        const exited = await Promise.race([agent.proc.exited, Bun.sleep(20_000).then(() => "still running after 20 s")]);
        expect({ signals: `${first} ${second}`, exited, signal: agent.proc.signalCode, left: pids.filter((p) => !processGone(p)) }).toEqual({
          signals: `${first} ${second}`,
          exited: 0,
          signal: null,
          left: [],
        });
        expect(agent.stderr()).toContain("stop signal again: killing the tasks' processes now");
        // The run is recorded as stopped by the shutdown, not found interrupted by the next start.
        await using again = await startBinary({ dataDir });
        const runs = (await (await fetch(`${again.url}/api/v1/tasks/${task.id}/runs`)).json()) as { runs: { error?: string }[] };
        expect(runs.runs.map((r) => r.error)).toEqual(["interrupted: agent shut down"]);
      } finally {
        await agent[Symbol.asyncDispose]();
        for (const p of pids) if (!processGone(p)) process.kill(p, "SIGKILL");
      }
    }
  });

  test("SIGHUP (the terminal went away) is a graceful stop like SIGTERM", async () => {
    const agent = await startBinary({ dataDir: newDir() });
    let pids: number[] = [];
    try {
      pids = (await stubbornTask(agent, 0)).pids;
      agent.proc.kill("SIGHUP");
      // Before: the default action ended the agent at once and the task ran on.
      expect({ exited: await agent.proc.exited, signal: agent.proc.signalCode, left: pids.filter((p) => !processGone(p)) }).toEqual({ exited: 0, signal: null, left: [] });
      expect(agent.stderr()).toContain('"msg":"tasklane stopped"');
    } finally {
      await agent[Symbol.asyncDispose]();
      for (const p of pids) if (!processGone(p)) process.kill(p, "SIGKILL");
    }
  });

  test("without a store (--data-dir :memory:) the script files go with the agent", async () => {
    const agent = await startBinary();
    // A private dir of a random name, tagged with the agent's pid.
    const made = readdirSync(tmpdir()).filter((n) => n.startsWith(`tasklane-scripts-${agent.proc.pid}-`));
    expect(made).toHaveLength(1);
    const dir = join(tmpdir(), made[0]!);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    try {
      const body = Buffer.from("echo hi\n").toString("base64");
      const res = await fetch(`${agent.url}/api/v1/tasks?wait=true`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ spec: { slot: "s", kind: { subprocess: { mode: { script: { runtime: "bash", body } } } } } }),
      });
      expect(((await res.json()) as { task: { status: { phase: string } } }).task.status.phase).toBe("succeeded");
      expect(readdirSync(dir).length).toBe(1);
      expect(await agent.stop()).toBe(0);
      expect(existsSync(dir)).toBe(false);
    } finally {
      await agent[Symbol.asyncDispose]();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
