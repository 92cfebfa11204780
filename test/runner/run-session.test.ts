/**
 * A stopped run takes its whole session with it (CONTRACT §6): processes in
 * other process groups of the run's session — coreutils `timeout`, bash
 * `set -m` jobs — are signalled and waited for like the group, on the main
 * thread and on the runner thread; a run whose leader exits on its own costs
 * no scan of /proc.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { procScans } from "../../src/runner/proc-stat.ts";
import { startRun, type RunHandle } from "../../src/runner/run-process.ts";
import { createThreadRunner } from "../../src/runner/run-thread.ts";
import { makeFifo } from "../helpers/task-control.ts";
import { createLineCollector, type LineCollector } from "./line-collector.ts";
import { FIXTURES, runSpec as spec, runnerTempDir, sh } from "./run-spec.ts";
import { groupAndSession, otherGroupsScript, sessionCleanup, sessionPids, waitSessionEmpty } from "./session.ts";

const cleanup = sessionCleanup();
const { path: tmp } = runnerTempDir("run-session-test-");

/**
 * Waits until both children of {@link otherGroupsScript} run, and checks that
 * they are where the test needs them: in the run's session, outside its group.
 */
async function otherGroupsReady(run: RunHandle, out: LineCollector): Promise<number> {
  const sid = cleanup.add((await run.identified)!.pid);
  const pids = [];
  for (const re of [/^timeout-child (\d+)$/, /^job (\d+)$/]) {
    pids.push(Number(re.exec(await out.waitFor("stdout", re, run.result))![1]));
  }
  for (const pid of pids) {
    const [pgid, session] = groupAndSession(pid)!;
    expect(session).toBe(sid);
    expect(pgid).not.toBe(sid);
  }
  expect(sessionPids(sid).length).toBe(4); // the leader, timeout, its child, the job
  return sid;
}

describe("stopping a run stops its whole session", () => {
  test("timeout: processes in other groups of the session are gone when the run ends", async () => {
    const out = createLineCollector();
    const run = startRun(spec(sh(otherGroupsScript()), out, { timeoutMs: 1_500, killGraceMs: 2_000 }));
    const sid = await otherGroupsReady(run, out); // before the timeout
    const r = await run.result;
    expect(r.stoppedBy).toBe("timeout");
    expect(sessionPids(sid)).toEqual([]);
  });

  test("cancel: TERM-ignoring processes in other groups get SIGKILL after the grace, and the run waits for it", async () => {
    const out = createLineCollector();
    const killGraceMs = 300;
    const run = startRun(spec(sh(otherGroupsScript('trap "" TERM;')), out, { killGraceMs }));
    const sid = await otherGroupsReady(run, out);
    const t0 = performance.now();
    const r = await run.stop("canceled");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(killGraceMs - 5);
    expect(r).toEqual({ signal: "SIGTERM", stoppedBy: "canceled", startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(sessionPids(sid)).toEqual([]);
  });

  test("stopped (SIGSTOP) processes in other groups are continued so they can honour SIGTERM", async () => {
    const out = createLineCollector();
    const killGraceMs = 3_000;
    // The leader outlives its TERM until its children are gone: their groups are not
    // orphaned, so no SIGCONT comes from the kernel — only the one the stop sends.
    const run = startRun(spec(sh(`trap 'wait; exit 0' TERM\n${otherGroupsScript()}`), out, { killGraceMs }));
    const sid = await otherGroupsReady(run, out);
    for (const pid of sessionPids(sid)) if (pid !== sid) process.kill(pid, "SIGSTOP");
    const t0 = performance.now();
    const r = await run.stop("deleted");
    expect(performance.now() - t0).toBeLessThan(killGraceMs / 4);
    expect(r).toEqual({ exitCode: 0, stoppedBy: "deleted", startedAt: r.startedAt, finishedAt: r.finishedAt });
    expect(sessionPids(sid)).toEqual([]);
  });

  test("runner thread: a stop from the main thread stops the whole session", async () => {
    const threads = createThreadRunner();
    try {
      const out = createLineCollector();
      const run = threads.run(spec(sh(otherGroupsScript('trap "" TERM;')), out, { killGraceMs: 200 }));
      const sid = await otherGroupsReady(run, out);
      const r = await run.stop("shutdown");
      expect(r.stoppedBy).toBe("shutdown");
      expect(sessionPids(sid)).toEqual([]);
    } finally {
      await threads.close();
    }
  });

  test("runner thread that fails mid-run: the rest of the run's session is killed with its group", async () => {
    const threads = createThreadRunner({ workerUrl: join(FIXTURES, "runner-thread-fails.ts") });
    try {
      // The fixture's runs write nowhere: the job says it is up through a fifo.
      const fifo = makeFifo(tmp, "job-up");
      const run = threads.run(spec(sh(`set -m; bash -c 'echo "job $$" > ${fifo}; exec sleep 1000' & wait`), createLineCollector()));
      const sid = cleanup.add((await run.identified)!.pid);
      const job = Number((await Bun.file(fifo).text()).trim().split(" ")[1]);
      expect(groupAndSession(job)).toEqual([job, sid]);
      const r = await run.stop("canceled"); // the fixture throws on stop: the main thread kills the run
      expect(r.spawnError).toBe("runner thread failed: runner fixture fails on stop");
      expect(await waitSessionEmpty(sid)).toEqual([]);
    } finally {
      await threads.close();
    }
  });

  test("the stop of many runs at once shares its scans of /proc", async () => {
    const n = 40;
    const outs = Array.from({ length: n }, () => createLineCollector());
    const runs = outs.map((out) => startRun(spec(sh(otherGroupsScript()), out, { killGraceMs: 5_000 })));
    const sids = await Promise.all(runs.map((run, i) => otherGroupsReady(run, outs[i]!)));
    const before = procScans();
    const results = await Promise.all(runs.map((run) => run.stop("shutdown")));
    const scans = procScans() - before;
    expect(results.every((r) => r.stoppedBy === "shutdown")).toBe(true);
    for (const sid of sids) expect(sessionPids(sid)).toEqual([]);
    expect(scans).toBeGreaterThan(0);
    expect(scans).toBeLessThan(n / 2); // per run: a sweep with SIGTERM and at least one check that all is gone
  });
});

describe("a run whose leader exits on its own", () => {
  test("costs no scan of /proc; a stop costs a few", async () => {
    const before = procScans();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => startRun(spec(sh(`exit ${i % 3}`), createLineCollector())).result));
    expect(results.map((r) => r.exitCode)).toEqual(Array.from({ length: 20 }, (_, i) => i % 3));
    expect(procScans()).toBe(before);

    const out = createLineCollector();
    const run = startRun(spec(sh("echo ready; exec sleep 1000"), out));
    cleanup.add(run.process!.pid);
    await out.waitFor("stdout", /^ready$/, run.result);
    expect((await run.stop("canceled")).stoppedBy).toBe("canceled");
    expect(procScans() - before).toBeGreaterThanOrEqual(1);
    expect(procScans() - before).toBeLessThanOrEqual(3);
  });
});
