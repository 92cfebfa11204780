import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { truncationMarker } from "../../src/runner/line-splitter.ts";
import { groupAlive, readProcStartTime, readProcStat, sameStartTime } from "../../src/runner/proc-stat.ts";
import { signalName, startRun } from "../../src/runner/run-process.ts";
import { processGone } from "../helpers/process.ts";
import { createLineCollector } from "./line-collector.ts";
import { FIXTURES, runSpec as spec, runnerTempDir, sh, TREE } from "./run-spec.ts";

const ENV_BIN = Bun.which("env")!;
const { path: tmp, file: tmpFile } = runnerTempDir("runner-test-");

describe("startRun", () => {
  test("exit code 0 with its output", async () => {
    const out = createLineCollector();
    await using run = startRun(spec(sh("echo hello; echo world"), out));
    const r = await run.result;
    expect(r).toEqual({ exitCode: 0, startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(out.lines).toEqual({ stdout: ["hello", "world"], stderr: [] });
  });

  test("a child writing short lines at full speed does not hold the event loop: a timer fires while it runs", async () => {
    const yes = Bun.which("yes")!;
    let lines = 0;
    const t0 = performance.now();
    const timer = Promise.withResolvers<number>();
    setTimeout(() => timer.resolve(performance.now() - t0), 10);
    // The run ends by its own timeout (1.5 s), itself a timer: starved, it fired seconds late.
    await using run = startRun({ ...spec([yes], createLineCollector(), { timeoutMs: 1_500, killGraceMs: 100 }), onLines: (_s, l) => void (lines += l.length) });
    const firedAfter = await timer.promise;
    const r = await run.result;
    expect(r.stoppedBy).toBe("timeout");
    expect(lines).toBeGreaterThan(100_000);
    // Without a turn between reads it fired only when the run was over (≥ 1 500 ms); with one, at once.
    expect(firedAfter).toBeLessThan(500);
  });

  test("exit code 3", async () => {
    const out = createLineCollector();
    await using run = startRun(spec(sh("echo oops >&2; exit 3"), out));
    const r = await run.result;
    expect(r).toEqual({ exitCode: 3, startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(out.lines).toEqual({ stdout: [], stderr: ["oops"] });
  });

  test("death by a real-time signal is named as kill -l names it (SIGRTMIN+n), not 'signal 40'", async () => {
    await using run = startRun(spec(sh("kill -40 $$"), createLineCollector()));
    const r = await run.result;
    expect(r.signal).toBe("SIGRTMIN+6");
    expect([signalName(9), signalName(34), signalName(64), signalName(99)]).toEqual(["SIGKILL", "SIGRTMIN+0", "SIGRTMIN+30", "99"]);
  });

  test("death by signal: signal set, exitCode absent", async () => {
    await using run = startRun(spec(sh("kill -9 $$"), createLineCollector()));
    const r = await run.result;
    expect(r).toEqual({ signal: "SIGKILL", startedAt: r.startedAt, finishedAt: r.finishedAt });
  });

  test("the given env is the whole environment of the child", async () => {
    const out = createLineCollector();
    const env = { FOO: "bar baz", EMPTY: "", PATH: "/usr/bin:/bin" };
    await using run = startRun(spec([ENV_BIN], out, { env }));
    expect((await run.result).exitCode).toBe(0);
    expect(out.lines.stdout.toSorted()).toEqual(["EMPTY=", "FOO=bar baz", "PATH=/usr/bin:/bin"]);
  });

  test("cwd is honoured", async () => {
    const out = createLineCollector();
    await using run = startRun(spec(sh("pwd -P"), out, { cwd: tmp }));
    expect((await run.result).exitCode).toBe(0);
    expect(out.lines.stdout).toEqual([tmp]);
  });

  test("a bad cwd is a spawnError, not a throw", async () => {
    const file = tmpFile("not-a-dir");
    writeFileSync(file, "");
    const cases: [string, string][] = [
      ["/nope", "cwd /nope does not exist or is not a directory"],
      [file, `cwd ${file} does not exist or is not a directory`],
      ["relative/dir", "cwd relative/dir is not an absolute path"],
    ];
    for (const [cwd, spawnError] of cases) {
      const run = startRun(spec(sh("true"), createLineCollector(), { cwd }));
      expect(run.process).toBeUndefined();
      const r = await run.result;
      expect(r).toEqual({ spawnError, startedAt: r.startedAt, finishedAt: r.finishedAt });
      expect(await run.stop("canceled")).toBe(r);
    }
  });

  test("a missing or non-executable program is a spawnError", async () => {
    const missing = startRun(spec(["/nonexistent/tool", "x"], createLineCollector()));
    expect((await missing.result).spawnError).toBe("executable not found: /nonexistent/tool");
    const file = tmpFile("plain");
    writeFileSync(file, "echo hi\n", { mode: 0o644 });
    const noexec = startRun(spec([file], createLineCollector()));
    expect((await noexec.result).spawnError).toBe(`permission denied: cannot execute ${file}`);
    const badShebang = tmpFile("bad-shebang");
    writeFileSync(badShebang, "#!/nonexistent/interpreter\n", { mode: 0o755 });
    const shebang = startRun(spec([badShebang], createLineCollector()));
    expect((await shebang.result).spawnError).toBe(
      `cannot start ${badShebang}: its interpreter (#! line) or a library it needs was not found`,
    );
    const empty = startRun(spec([], createLineCollector()));
    expect((await empty.result).spawnError).toBe("empty command line");
  });

  test("process identity: its own group (pgid = pid) and the /proc start time, estimated at spawn", async () => {
    const out = createLineCollector();
    await using run = startRun(spec(sh("echo ready; exec sleep 1000"), out));
    await out.waitFor("stdout", /^ready$/, run.result);
    const p = run.process!;
    expect(p).toEqual({ pid: p.pid, pgid: p.pid, startTime: expect.any(String) });
    // Within a few ticks (10 ms each); the recovery check allows START_TIME_TOLERANCE_TICKS.
    expect(Math.abs(Number(BigInt(p.startTime!) - BigInt(readProcStartTime(p.pid)!)))).toBeLessThanOrEqual(10);
    expect(sameStartTime(readProcStartTime(p.pid)!, p.startTime!)).toBe(true);
    expect(readProcStat(p.pid)?.pgrp).toBe(p.pid);
    const ps = Bun.spawnSync(["ps", "-o", "pgid=", "-p", String(p.pid)]);
    expect(Number(ps.stdout.toString().trim())).toBe(p.pid);
  });

  test("timeout: stoppedBy timeout, TERM-ignoring grandchild killed, whole group gone", async () => {
    const out = createLineCollector();
    const pidfile = tmpFile("grandchild.pid");
    const killGraceMs = 300;
    await using run = startRun(spec([TREE, pidfile, "stay"], out, { timeoutMs: 1_000, killGraceMs }));
    await out.waitFor("stdout", /^ready$/, run.result); // the timeout must not have fired before this
    const grandchild = Number(readFileSync(pidfile, "utf8"));
    expect(processGone(grandchild)).toBe(false);
    const r = await run.result;
    expect(r).toEqual({ signal: "SIGTERM", stoppedBy: "timeout", startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(r.finishedAt - r.startedAt).toBeGreaterThanOrEqual(1_000 + killGraceMs - 5);
    expect(groupAlive(run.process!.pgid)).toBe(false);
    expect(processGone(grandchild)).toBe(true);
  });

  test("stop: first reason wins, every call awaits the same result, whole group gone", async () => {
    const out = createLineCollector();
    const pidfile = tmpFile("grandchild.pid");
    await using run = startRun(spec([TREE, pidfile, "stay"], out, { killGraceMs: 200 }));
    await out.waitFor("stdout", /^ready$/, run.result);
    const grandchild = Number(readFileSync(pidfile, "utf8"));
    const first = run.stop("canceled");
    const second = run.stop("deleted");
    const r = await first;
    expect(await second).toBe(r);
    expect(await run.result).toBe(r);
    expect(r).toEqual({ signal: "SIGTERM", stoppedBy: "canceled", startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(groupAlive(run.process!.pgid)).toBe(false);
    expect(processGone(grandchild)).toBe(true);
    expect(await run.stop("shutdown")).toBe(r);
  });

  test("a leader that exits on its own: the grandchild it leaves behind is killed too", async () => {
    const out = createLineCollector();
    const pidfile = tmpFile("grandchild.pid");
    await using run = startRun(spec([TREE, pidfile, "leave"], out, { killGraceMs: 200 }));
    const r = await run.result; // the grandchild holds stdout open: draining must still end
    expect(r).toEqual({ exitCode: 0, startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(out.lines.stdout).toEqual(["ready"]);
    expect(groupAlive(run.process!.pgid)).toBe(false);
    expect(processGone(Number(readFileSync(pidfile, "utf8")))).toBe(true);
  });

  test("a child that honours SIGTERM stops well before killGraceMs", async () => {
    const out = createLineCollector();
    const killGraceMs = 20_000;
    await using run = startRun(spec(sh("echo ready; exec sleep 1000"), out, { killGraceMs }));
    await out.waitFor("stdout", /^ready$/, run.result);
    const t0 = performance.now();
    const r = await run.stop("replaced");
    expect(performance.now() - t0).toBeLessThan(killGraceMs / 4);
    expect(r).toEqual({ signal: "SIGTERM", stoppedBy: "replaced", startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(groupAlive(run.process!.pgid)).toBe(false);
  });

  test("a stopped (SIGSTOP) group is continued so it can honour SIGTERM", async () => {
    const out = createLineCollector();
    const killGraceMs = 20_000;
    // One process with no children, so no shell fork can race the signals: what is
    // tested is only that the runner continues a stopped group after TERM.
    const script = "process.on('SIGTERM', () => { console.log('bye'); process.exit(0); }); console.log('ready'); setInterval(() => {}, 1000);";
    await using run = startRun(spec([process.execPath, "-e", script], out, { killGraceMs }));
    await out.waitFor("stdout", /^ready$/, run.result);
    process.kill(-run.process!.pgid, "SIGSTOP");
    const t0 = performance.now();
    const r = await run.stop("canceled");
    expect(performance.now() - t0).toBeLessThan(killGraceMs / 4);
    expect(r).toEqual({ exitCode: 0, stoppedBy: "canceled", startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(out.lines.stdout).toEqual(["ready", "bye"]);
  });

  test("killGraceMs 0 goes straight to SIGKILL for a TERM-ignoring leader", async () => {
    const out = createLineCollector();
    await using run = startRun(spec(sh("trap '' TERM; echo ready; while :; do sleep 1; done"), out, { killGraceMs: 0 }));
    await out.waitFor("stdout", /^ready$/, run.result);
    const r = await run.stop("shutdown");
    expect(r).toEqual({ signal: "SIGKILL", stoppedBy: "shutdown", startedAt: r.startedAt, finishedAt: r.finishedAt });
  });

  test("a process that left the group and holds the pipe does not hang the run", async () => {
    const out = createLineCollector();
    const pidfile = tmpFile("escaped.pid");
    await using run = startRun(spec([join(FIXTURES, "runner-escape.sh"), pidfile], out));
    try {
      const r = await run.result;
      expect(r).toEqual({ exitCode: 0, startedAt: r.startedAt, finishedAt: r.finishedAt });
      expect(out.lines.stdout).toEqual(["ready"]);
    } finally {
      process.kill(Number(readFileSync(pidfile, "utf8")), "SIGKILL");
    }
  });

  test("stdout and stderr lines arrive in order and separately, one array per chunk", async () => {
    const out = createLineCollector();
    const n = 5_000;
    await using run = startRun(spec([join(FIXTURES, "runner-streams.sh"), String(n)], out));
    expect((await run.result).exitCode).toBe(0);
    expect(out.lines).toEqual({
      stdout: Array.from({ length: n }, (_, i) => `out ${i + 1}`),
      stderr: Array.from({ length: n }, (_, i) => `err ${i + 1}`),
    });
    expect(out.calls.every((c) => c.count > 0)).toBe(true);
  });

  test("long lines are cut at maxLineBytes with the marker; partial last line is flushed", async () => {
    const out = createLineCollector();
    await using run = startRun(spec(sh("head -c 100000 /dev/zero | tr '\\0' a; echo; printf tail"), out, { maxLineBytes: 1000 }));
    expect((await run.result).exitCode).toBe(0);
    expect(out.lines.stdout).toEqual(["a".repeat(1000) + truncationMarker(99_000), "tail"]);
  });

  test("bytes: what the process wrote, once each (cut lines, CRLF, invalid UTF-8, a last line without newline)", async () => {
    const out = createLineCollector();
    const script =
      "head -c 1048576 /dev/zero | tr '\\0' a; printf '\\n'; printf 'x\\r\\n'; printf '\\377\\376\\n'; printf y; " +
      "printf 'e\\r\\n' >&2; head -c 5000 /dev/zero | tr '\\0' b >&2";
    await using run = startRun(spec(sh(script), out, { maxLineBytes: 1000 }));
    expect((await run.result).exitCode).toBe(0);
    expect(out.lines).toEqual({
      stdout: ["a".repeat(1000) + truncationMarker(1_047_576), "x", "\uFFFD\uFFFD", "y"],
      stderr: ["e", "b".repeat(1000) + truncationMarker(4000)],
    });
    expect(out.bytes).toEqual({ stdout: 1_048_577 + 3 + 3 + 1, stderr: 3 + 5000 });
  });

  test("timestamps come from the injected clock", async () => {
    let t = 1_000;
    const out = createLineCollector();
    await using run = startRun(spec(sh("echo x"), out), () => t++);
    const r = await run.result;
    expect(r.startedAt).toBe(1_000);
    expect(out.timestamps.every((ts) => ts > r.startedAt && ts < r.finishedAt)).toBe(true);
  });

  test("a throwing onLines does not break the run", async () => {
    const seen: string[] = [];
    await using run = startRun({
      ...spec(sh("echo a; echo b >&2; exit 4"), createLineCollector()),
      onLines(_stream, lines) {
        seen.push(...lines);
        throw new Error("consumer bug");
      },
    });
    expect((await run.result).exitCode).toBe(4);
    expect(seen.toSorted()).toEqual(["a", "b"]);
  });

  test("stop after the run ended returns the same result without stoppedBy", async () => {
    await using run = startRun(spec(sh("exit 0"), createLineCollector()));
    const r = await run.result;
    expect(await run.stop("canceled")).toBe(r);
    expect(r.stoppedBy).toBeUndefined();
  });
});
