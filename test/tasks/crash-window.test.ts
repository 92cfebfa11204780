/**
 * The crash window between a spawn and the commit of its run (CONTRACT §6:
 * "its leftover process group is killed"; "no process of a task outlives
 * it"). A real agent in a child process whose WAL fsync never completes
 * (test/fixtures/agent-fsync-stuck.ts) commits once, then holds every later
 * commit; a task started then has its process identity only in the process
 * journal. After a kill -9 of that agent, the next agent on the same data
 * dir must kill that process too, not only the processes of stored runs.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startAgent } from "../helpers/start-agent.ts";
import { tempDir } from "../helpers/task-control.ts";
import { groupAndSession, sessionCleanup, waitSessionEmpty } from "../runner/session.ts";

const FIXTURE = join(import.meta.dir, "..", "fixtures", "agent-fsync-stuck.ts");
const cleanup = sessionCleanup();

/**
 * What `probe` finds, polling every 5 ms until it finds something (another
 * process's doing: a spawn, a write), bounded by `ms`; `missing()` says what
 * was not found.
 */
async function waitFor<T>(probe: () => T | undefined, missing: () => string, ms = 10_000): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const found = probe();
    if (found !== undefined) return found;
    if (performance.now() > deadline) throw new Error(`${missing()} within ${ms} ms`);
    await Bun.sleep(5); // waiting for the other process, not for time
  }
}

/** The pid of the live process running `argv` (its command found by name or by path), once one exists. */
function waitForProcess(argv: string[]): Promise<number> {
  const matches = (cmdline: string) => {
    const [command, ...args] = cmdline.split("\0").slice(0, -1);
    return command?.split("/").at(-1) === argv[0] && args.join("\0") === argv.slice(1).join("\0");
  };
  const find = () => {
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        if (matches(readFileSync(`/proc/${name}/cmdline`, "latin1"))) return Number(name);
      } catch {
        // gone meanwhile
      }
    }
    return undefined;
  };
  return waitFor(find, () => `no process ${argv.join(" ")}`);
}

/** The text of `path` once it matches `pattern` (the last text read is in the error). */
function waitForFile(path: string, pattern: RegExp): Promise<string> {
  let text = "";
  const read = () => {
    text = readFileSync(path, "utf8");
    return pattern.test(text) ? text : undefined;
  };
  return waitFor(read, () => `${path} did not match ${pattern}: ${JSON.stringify(text)}`);
}

/** The child's stdout, line by line. */
function stdoutLines(child: Bun.Subprocess<"ignore", "pipe", "pipe">): { next(): Promise<string> } {
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  return {
    async next() {
      for (;;) {
        const nl = buf.indexOf("\n");
        if (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          return line;
        }
        const { done, value } = await reader.read();
        if (done) return "";
        buf += decoder.decode(value, { stream: true });
      }
    },
  };
}

function sleepSpec(slot: string, seconds: string): Record<string, unknown> {
  return { slot, kind: { subprocess: { mode: { command: { command: "sleep", args: [seconds] } } } } };
}

describe("kill -9 between a spawn and the commit of its run", () => {
  test("the next agent kills the process no stored run names (and the stored ones, as before)", async () => {
    using dir = tempDir("tasklane-crash-window-");
    const dataDir = join(dir.path, "data");
    const child = Bun.spawn([process.execPath, FIXTURE, dataDir], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    let sidStored: number;
    let sidUnstored: number;
    try {
      const lines = stdoutLines(child);
      const port = /^listening (\d+)$/.exec(await lines.next())?.[1];
      if (!port) throw new Error(`fixture agent did not start: ${await new Response(child.stderr).text()}`);
      const submit = (spec: Record<string, unknown>) =>
        fetch(`http://127.0.0.1:${port}/api/v1/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ spec }) });
      // Unique arguments: these processes are found by their command line.
      const n = String(100_000 + Math.floor(Math.random() * 800_000));
      const m = String(Number(n) + 1);
      // Answered 201: its run (with its process) is committed and durable.
      expect((await submit(sleepSpec("stored", n))).status).toBe(201);
      const stored = await waitForProcess(["sleep", n]);
      child.kill("SIGUSR2");
      expect(await lines.next()).toBe("stuck");
      // Committed, its fsync never ends (so never answered); then a task whose commit waits for that fsync.
      void submit({ ...sleepSpec("barrier", "1"), hold: true }).catch(() => undefined);
      expect(await lines.next()).toBe("held");
      void submit(sleepSpec("unstored", m)).catch(() => undefined);
      const unstored = await waitForProcess(["sleep", m]);
      sidStored = cleanup.add(groupAndSession(stored)![1]);
      sidUnstored = cleanup.add(groupAndSession(unstored)![1]);
      // The second process is named only by the journal, in its last line (the lines before it are of
      // committed runs: a commit empties the file only once it is a page long). The agent appends the
      // line just after its spawn returns, so the process can be seen in /proc a moment before it.
      const journal = await waitForFile(join(dataDir, "tasklane.db-procs"), new RegExp(`(^|\n)${unstored} ${unstored} \\d+\n$`));
      expect(journal.startsWith(`${stored} ${stored} `)).toBe(true); // committed, kept: the file is far from a page
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
    // Both outlived the agent, in sessions of their own.
    expect(groupAndSession(sidStored)).toEqual([sidStored, sidStored]);
    expect(groupAndSession(sidUnstored)).toEqual([sidUnstored, sidUnstored]);

    await using next = await startAgent({ dataDir });
    expect(await waitSessionEmpty(sidUnstored)).toEqual([]);
    expect(await waitSessionEmpty(sidStored)).toEqual([]);
    // The task of the stored run is recovered as interrupted; the others' submits were never answered, and are not known.
    const { body } = await next.json("GET", "/api/v1/tasks?slot=stored");
    expect(body.tasks.map((t: { status: unknown }) => t.status)).toEqual([expect.objectContaining({ attempt: 1, error: "interrupted: agent restarted" })]);
    expect((await next.json("GET", "/api/v1/tasks?slot=unstored")).body.tasks).toEqual([]);
    // Its clean stop removes the journal.
    await next.agent.stop();
    expect(existsSync(join(dataDir, "tasklane.db-procs"))).toBe(false);
  });
});
