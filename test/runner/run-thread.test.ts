import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { groupAlive, sameStartTime, readProcStartTime } from "../../src/runner/proc-stat.ts";
import { createThreadRunner, type ThreadRunner } from "../../src/runner/run-thread.ts";
import { processGone } from "../helpers/process.ts";
import { makeFifo, release } from "../helpers/task-control.ts";
import { createLineCollector } from "./line-collector.ts";
import { BASH, FIXTURES, runSpec as spec, runnerTempDir, sh, TREE } from "./run-spec.ts";

const { path: tmp, file: tmpFile } = runnerTempDir("run-thread-test-");

/** A runner closed at the end of the test. */
function runner(opts: Parameters<typeof createThreadRunner>[0] = {}): ThreadRunner & AsyncDisposable {
  const r = createThreadRunner(opts);
  return Object.assign(r, { [Symbol.asyncDispose]: () => r.close() });
}

describe("createThreadRunner", () => {
  test("a run on the runner thread: identity after the spawn, lines per stream in order, exit code", async () => {
    await using threads = runner();
    const out = createLineCollector();
    const run = threads.run(spec(sh('for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; done; exit 4'), out));
    expect(run.process).toBeUndefined(); // known once the runner thread reports it
    const proc = await run.identified;
    expect(proc).toBeDefined();
    expect(run.process).toBe(proc);
    expect(proc!.pgid).toBe(proc!.pid);
    expect(proc!.pid).not.toBe(process.pid);
    const r = await run.result;
    expect(r).toEqual({ exitCode: 4, startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(out.lines).toEqual({ stdout: ["out 1", "out 2", "out 3"], stderr: ["err 1", "err 2", "err 3"] });
    expect(threads.inFlight).toBe(0);
  });

  test("the estimated start time matches /proc for a process started on the runner thread", async () => {
    await using threads = runner();
    const fifo = makeFifo(tmp, "hold");
    const run = threads.run(spec(sh(`read -r _ < ${fifo}`), createLineCollector()));
    const proc = (await run.identified)!;
    expect(proc.startTime).toBeDefined();
    expect(sameStartTime(proc.startTime!, readProcStartTime(proc.pid)!)).toBe(true);
    await release(fifo);
    expect((await run.result).exitCode).toBe(0);
  });

  test("stop on the main thread stops the whole group on the runner thread", async () => {
    await using threads = runner();
    const out = createLineCollector();
    const pidfile = tmpFile("tree");
    const run = threads.run(spec([TREE, pidfile, "stay"], out, { killGraceMs: 300 }));
    await out.waitFor("stdout", /^ready$/, run.result);
    const grandchild = Number(readFileSync(pidfile, "utf8"));
    expect(processGone(grandchild)).toBe(false);
    const r = await run.stop("canceled");
    expect(r).toEqual({ signal: "SIGTERM", stoppedBy: "canceled", startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(groupAlive(run.process!.pgid)).toBe(false);
    expect(processGone(grandchild)).toBe(true);
    expect(await run.stop("shutdown")).toBe(r); // settled: nothing more crosses
  });

  test("a stop sent before the runner thread has started the run still wins", async () => {
    await using threads = runner();
    const run = threads.run(spec(sh("exec sleep 30"), createLineCollector()));
    const r = await run.stop("deleted"); // same turn as the start
    expect(r.stoppedBy).toBe("deleted");
    expect(r.signal).toBe("SIGTERM");
  });

  test("a timeout fires on the runner thread", async () => {
    await using threads = runner();
    const r = await threads.run(spec(sh("exec sleep 30"), createLineCollector(), { timeoutMs: 50, killGraceMs: 1_000 })).result;
    expect(r).toEqual({ signal: "SIGTERM", stoppedBy: "timeout", startedAt: r.startedAt, finishedAt: r.finishedAt });
  });

  test("a spawn that fails: no identity, the error as the result", async () => {
    await using threads = runner();
    const run = threads.run(spec(["/nonexistent/tasklane-test"], createLineCollector()));
    expect(await run.identified).toBeUndefined();
    expect(await run.result).toMatchObject({ spawnError: "executable not found: /nonexistent/tasklane-test" });
    expect(run.process).toBeUndefined();
  });

  test("many runs at once each get their own lines and result", async () => {
    await using threads = runner();
    const outs = Array.from({ length: 40 }, () => createLineCollector());
    const runs = outs.map((out, i) => threads.run(spec(sh(`echo "run ${i}"; exit ${i % 7}`), out)));
    expect(threads.inFlight).toBe(40);
    const results = await Promise.all(runs.map((r) => r.result));
    results.forEach((r, i) => expect(r.exitCode).toBe(i % 7));
    outs.forEach((out, i) => expect(out.lines.stdout).toEqual([`run ${i}`]));
    expect(new Set(runs.map((r) => r.process!.pid)).size).toBe(40);
    expect(threads.inFlight).toBe(0);
  });

  test("100 000 lines cross the threads complete and in order, over-long ones cut as on the main thread", async () => {
    await using threads = runner();
    const out = createLineCollector();
    const script = `seq 1 100000; head -c 300 /dev/zero | tr '\\0' x; echo; echo done >&2`;
    const r = await threads.run(spec(sh(script), out, { maxLineBytes: 100 })).result;
    expect(r.exitCode).toBe(0);
    expect(out.lines.stdout).toHaveLength(100_001);
    expect(out.lines.stdout.slice(0, 100_000).every((line, i) => line === String(i + 1))).toBe(true);
    expect(out.lines.stdout[100_000]).toBe(`${"x".repeat(100)} …[truncated 200 bytes]`);
    expect(out.lines.stderr).toEqual(["done"]);
  });

  test("the bytes read cross the threads with the lines", async () => {
    await using threads = runner();
    const out = createLineCollector();
    const script = "head -c 300000 /dev/zero | tr '\\0' a; printf '\\nx\\r\\ny'; printf 'e\\n' >&2";
    const r = await threads.run(spec(sh(script), out, { maxLineBytes: 100 })).result;
    expect(r.exitCode).toBe(0);
    expect(out.lines).toEqual({ stdout: ["a".repeat(100) + " …[truncated 299900 bytes]", "x", "y"], stderr: ["e"] });
    expect(out.bytes).toEqual({ stdout: 300_000 + 1 + 3 + 1, stderr: 2 });
  });

  test("an exception in onLines does not stop the run", async () => {
    await using threads = runner();
    let calls = 0;
    const r = await threads.run({
      ...spec(sh("echo a; echo b >&2"), createLineCollector()),
      onLines: () => {
        calls++;
        throw new Error("consumer bug");
      },
    }).result;
    expect(r.exitCode).toBe(0);
    expect(calls).toBe(2);
  });

  test("a runner thread that cannot start: the runs spawn on the calling thread, the error is told once", async () => {
    const errors: string[] = [];
    await using threads = runner({ workerUrl: join(FIXTURES, "runner-thread-broken.ts"), onError: (m) => errors.push(m) });
    const out = createLineCollector();
    const first = threads.run(spec(sh("echo first"), out));
    expect(await first.result).toMatchObject({ exitCode: 0 });
    expect(out.lines.stdout).toEqual(["first"]);
    expect(first.process?.pid).toBeGreaterThan(0);
    const second = threads.run(spec(sh("echo second"), out));
    expect(second.process?.pid).toBeGreaterThan(0); // spawned here at once
    expect((await second.result).exitCode).toBe(0);
    expect(out.lines.stdout).toEqual(["first", "second"]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain("runner thread could not start");
    expect(errors[0]).toContain("runner fixture cannot load");
  });

  test("a runner thread that fails mid-run: its run fails, its process group is killed", async () => {
    const errors: string[] = [];
    await using threads = runner({ workerUrl: join(FIXTURES, "runner-thread-fails.ts"), onError: (m) => errors.push(m) });
    const fifo = makeFifo(tmp, "held");
    // The child holds the fifo open for writing: once it said "ready" there, reading the fifo to
    // EOF waits for the child's death.
    const run = threads.run(spec(sh(`exec 3>${fifo}; echo ready >&3; exec sleep 30`), createLineCollector()));
    const reader = Bun.file(fifo).stream().pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("ready\n")) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`fifo closed before ready: ${JSON.stringify(text)}`);
      text += value;
    }
    const proc = (await run.identified)!;
    expect(processGone(proc.pid)).toBe(false);
    const r = await run.stop("canceled"); // the fixture throws on stop
    expect(r.spawnError).toBe("runner thread failed: runner fixture fails on stop");
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
    expect(text).toBe("ready\n");
    expect(errors.some((m) => m.startsWith("runner thread failed"))).toBe(true);
    expect(threads.inFlight).toBe(0);
  });

  test("the runner thread keeps the process alive only while runs are in flight", async () => {
    const fifo = makeFifo(tmp, "exit");
    const child = Bun.spawn([process.execPath, join(FIXTURES, "runner-thread-exit.ts"), BASH, fifo], { stdout: "pipe", stderr: "pipe" });
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("started")) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
    expect(text).toMatch(/^started \d+/);
    await release(fifo);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
    // It printed the result (the in-flight run held it open) and then exited on its own.
    expect(await child.exited).toBe(0);
    expect(text.split("\n").slice(1)).toEqual(["line released", "result exit=0", ""]);
  });
});
