import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  estimateStartTime,
  groupAlive,
  killLeftoverGroup,
  parseProcStat,
  readProcStartTime,
  readProcStat,
  sameStartTime,
  START_TIME_TOLERANCE_TICKS,
} from "../../src/runner/proc-stat.ts";
import { processGone } from "../helpers/process.ts";
import { groupAndSession, otherGroupsScript, sessionCleanup, sessionPids, waitSessionEmpty } from "./session.ts";

const SLEEP = Bun.which("sleep")!;
const TREE = join(import.meta.dir, "..", "fixtures", "runner-tree.sh");
const tmp = realpathSync(mkdtempSync(join(tmpdir(), "proc-stat-test-")));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const NO_SUCH_PID = 2_000_000_000;
const cleanup = sessionCleanup();

/** A detached `sleep` (its own group); killed when disposed. */
function spawnSleeper(cmd: string[] = [SLEEP, "1000"]) {
  const proc = Bun.spawn({ cmd, stdin: "ignore", stdout: "ignore", stderr: "ignore", detached: true });
  return Object.assign(proc, {
    [Symbol.dispose]() {
      try {
        process.kill(proc.pid, "SIGKILL");
      } catch {
        // already gone
      }
    },
  });
}

describe("parseProcStat", () => {
  test("reads fields after the last ')' even when the command name has spaces and parens", () => {
    const fields = ["S", "1", "4242", "4242", "0", "-1", "4194304", "1", "0", "0", "0", "37", "5", "0", "0", "20", "0", "1", "0", "987654"];
    expect(parseProcStat(`4242 (a) b (c) ${fields.join(" ")} 100 200\n`)).toEqual({
      state: "S",
      pgrp: 4242,
      session: 4242,
      startTime: "987654",
      utime: 37,
      stime: 5,
    });
  });

  test("rejects garbage", () => {
    expect(parseProcStat("")).toBeUndefined();
    expect(parseProcStat("12 (x) S 1")).toBeUndefined();
  });
});

describe("readProcStartTime", () => {
  test("own process: ticks since boot; missing pid: undefined", () => {
    expect(readProcStartTime(process.pid)).toMatch(/^\d+$/);
    expect(readProcStartTime(NO_SUCH_PID)).toBeUndefined();
  });

  test("a live process whose name contains ') ('", () => {
    const odd = join(tmp, "a) b (c");
    symlinkSync(SLEEP, odd);
    using proc = spawnSleeper([odd, "1000"]);
    const stat = readProcStat(proc.pid)!;
    expect(readFileSync(`/proc/${proc.pid}/comm`, "utf8")).toBe("a) b (c\n");
    expect(stat).toEqual({ state: stat.state, pgrp: proc.pid, session: proc.pid, startTime: readProcStartTime(proc.pid)!, utime: expect.any(Number), stime: expect.any(Number) });
    expect([stat.utime, stat.stime].every((t) => Number.isInteger(t) && t >= 0)).toBe(true);
    expect(BigInt(stat.startTime)).toBeGreaterThanOrEqual(BigInt(readProcStartTime(process.pid)!));
  });
});

describe("groupAlive", () => {
  test("true while a member lives, false once it is gone", async () => {
    const proc = spawnSleeper();
    expect(groupAlive(proc.pid)).toBe(true);
    process.kill(proc.pid, "SIGKILL");
    await proc.exited;
    expect(groupAlive(proc.pid)).toBe(false);
    expect(groupAlive(NO_SUCH_PID)).toBe(false);
  });
});

describe("estimateStartTime", () => {
  test("the estimate made around a spawn matches /proc's start time of the child", () => {
    for (let i = 0; i < 20; i++) {
      const before = performance.now();
      using proc = spawnSleeper();
      const estimate = estimateStartTime(before, performance.now())!;
      const actual = readProcStartTime(proc.pid)!;
      expect(Math.abs(Number(BigInt(actual) - BigInt(estimate)))).toBeLessThanOrEqual(10);
      expect(sameStartTime(actual, estimate)).toBe(true);
    }
  });

  test("sameStartTime accepts the tolerance either way and nothing beyond", () => {
    const t = START_TIME_TOLERANCE_TICKS;
    expect([0, t, -t, t + 1, -t - 1].map((d) => sameStartTime(String(1_000_000 + d), "1000000"))).toEqual([true, true, true, false, false]);
  });
});

describe("killLeftoverGroup", () => {
  test("kills a live group whose leader has the recorded start time, within the tolerance", async () => {
    const proc = spawnSleeper();
    const startTime = String(BigInt(readProcStartTime(proc.pid)!) - BigInt(START_TIME_TOLERANCE_TICKS));
    expect(killLeftoverGroup({ pid: proc.pid, pgid: proc.pid, startTime })).toBe(true);
    await proc.exited;
    expect(proc.signalCode).toBe("SIGKILL");
    expect(groupAlive(proc.pid)).toBe(false);
  });

  test("refuses a mismatched or missing start time (a reused pid)", () => {
    using proc = spawnSleeper();
    const startTime = readProcStartTime(proc.pid)!;
    const tolerance = BigInt(START_TIME_TOLERANCE_TICKS);
    for (const other of [BigInt(startTime) - tolerance - 1n, BigInt(startTime) + tolerance + 1n]) {
      expect(killLeftoverGroup({ pid: proc.pid, pgid: proc.pid, startTime: String(other) })).toBe(false);
    }
    expect(killLeftoverGroup({ pid: proc.pid, pgid: proc.pid })).toBe(false);
    expect(processGone(proc.pid)).toBe(false);
  });

  test("leader gone: kills the members left in the group, unless they predate the recorded start", async () => {
    const pidfile = join(tmp, "grandchild.pid");
    const leader = Bun.spawn({ cmd: [TREE, pidfile, "leave"], stdin: "ignore", stdout: "ignore", stderr: "ignore", detached: true });
    const startTime = readProcStartTime(leader.pid)!;
    expect(await leader.exited).toBe(0);
    const grandchild = Number(readFileSync(pidfile, "utf8"));
    try {
      expect(groupAlive(leader.pid)).toBe(true);
      const later = String(BigInt(readProcStartTime(grandchild)!) + BigInt(START_TIME_TOLERANCE_TICKS) + 1n);
      expect(killLeftoverGroup({ pid: leader.pid, pgid: leader.pid, startTime: later })).toBe(false);
      expect(processGone(grandchild)).toBe(false);
      expect(killLeftoverGroup({ pid: leader.pid, pgid: leader.pid, startTime })).toBe(true);
      while (!processGone(grandchild)) await Bun.sleep(5); // waiting for the exit, not for time
      expect(groupAlive(leader.pid)).toBe(false);
    } finally {
      try {
        process.kill(grandchild, "SIGKILL");
      } catch {
        // gone
      }
    }
  });

  /**
   * A detached bash (its own session) running {@link otherGroupsScript}, or only
   * starting it and exiting (`leave`): resolves once both children print their pid.
   */
  async function sessionWithOtherGroups(leave: boolean) {
    const script = leave ? otherGroupsScript().replace(/\nwait$/, "\nexit 0") : otherGroupsScript();
    const leader = Bun.spawn({ cmd: ["bash", "-c", script], stdin: "ignore", stdout: "pipe", stderr: "ignore", detached: true });
    const sid = cleanup.add(leader.pid);
    const startTime = readProcStartTime(leader.pid)!;
    const reader = leader.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!(/^timeout-child \d+$/m.test(text) && /^job \d+$/m.test(text))) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`the children did not start: ${JSON.stringify(text)}`);
      text += value;
    }
    void reader.cancel().catch(() => {});
    if (leave) expect(await leader.exited).toBe(0);
    const others = sessionPids(sid).filter((pid) => pid !== sid);
    expect(others).toHaveLength(3); // timeout, its child, the job
    for (const pid of others) expect(groupAndSession(pid)![0]).not.toBe(sid);
    return { leader, sid, startTime };
  }

  test("kills the processes in other groups of the run's session too (leader alive)", async () => {
    const { leader, sid, startTime } = await sessionWithOtherGroups(false);
    expect(killLeftoverGroup({ pid: sid, pgid: sid, startTime })).toBe(true);
    expect(await leader.exited).not.toBe(0);
    expect(await waitSessionEmpty(sid)).toEqual([]);
  });

  test("leader gone and its group empty: the rest of the session is killed, unless it predates the recorded start", async () => {
    const { sid, startTime } = await sessionWithOtherGroups(true);
    expect(groupAlive(sid)).toBe(false); // what is left is outside the leader's group
    const later = String(BigInt(startTime) + 1_000n);
    expect(killLeftoverGroup({ pid: sid, pgid: sid, startTime: later })).toBe(false);
    expect(sessionPids(sid)).toHaveLength(3);
    expect(killLeftoverGroup({ pid: sid, pgid: sid, startTime })).toBe(true);
    expect(await waitSessionEmpty(sid)).toEqual([]);
  });

  test("nothing to kill: no such group", () => {
    expect(killLeftoverGroup({ pid: NO_SUCH_PID, pgid: NO_SUCH_PID, startTime: "1" })).toBe(false);
  });
});
