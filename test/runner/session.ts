/**
 * The sessions of test runs, read from /proc without the code under test:
 * which processes are still alive in one, a bounded wait for it to empty, and
 * a cleanup that SIGKILLs whatever a test left in the sessions it registered
 * (after each test, also one that failed or timed out).
 */
import { afterEach } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";

/** Fields 3.. of /proc/<pid>/stat (index 0 = state, 2 = pgrp, 3 = session), or undefined if gone. */
function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}

/** Live (non-zombie) processes whose session id is `sid`. */
export function sessionPids(sid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f && f[0] !== "Z" && Number(f[3]) === sid) found.push(Number(name));
  }
  return found;
}

/** `[pgid, sid]` of a live process, or undefined. */
export function groupAndSession(pid: number): [number, number] | undefined {
  const f = statFields(pid);
  return f && f[0] !== "Z" ? [Number(f[2]), Number(f[3])] : undefined;
}

/** Waits (polling /proc, bounded by `ms`: below bun's 5 s test timeout) until session `sid` has no live process; returns what is still alive then. */
export async function waitSessionEmpty(sid: number, ms = 3_000): Promise<number[]> {
  const deadline = performance.now() + ms;
  for (;;) {
    const left = sessionPids(sid);
    if (left.length === 0 || performance.now() > deadline) return left;
    await Bun.sleep(5); // waiting for the processes to die, not for time
  }
}

/** SIGKILLs every live process of session `sid`. */
export function killSession(sid: number): void {
  for (const pid of sessionPids(sid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

/**
 * Sessions to clean up: call in a test file's top level; every session added
 * during a test is SIGKILLed after it, pass or fail.
 */
export function sessionCleanup(): { add(sid: number): number } {
  const sessions = new Set<number>();
  afterEach(() => {
    for (const sid of sessions) killSession(sid);
    sessions.clear();
  });
  return {
    add(sid) {
      sessions.add(sid);
      return sid;
    },
  };
}

/**
 * A bash script whose processes sit in two other process groups of its
 * session: coreutils `timeout` (its own group, with its child) and a `set -m`
 * job. Each prints its pid once it exists: `timeout-child N`, `job N`.
 * `trap` is put before each child's `exec sleep` (e.g. `trap '' TERM`).
 */
export function otherGroupsScript(trap = ""): string {
  return [
    `timeout 300 bash -c '${trap} echo "timeout-child $$"; exec sleep 1000' &`,
    "set -m",
    `bash -c '${trap} echo "job $$"; exec sleep 1000' &`,
    "set +m",
    "wait",
  ].join("\n");
}
