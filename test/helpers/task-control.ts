/**
 * Helpers for tests that drive tasks over REST: submit, wait for a state or
 * an output line (event-driven, never by sleeping), and hold a task inside
 * its run with a fifo the test releases.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Task, TaskRun } from "../../src/tasks/model.ts";
import { readSse, type SseEvent } from "./sse.ts";
import type { TestAgent } from "./start-agent.ts";

/** Absolute path of test/fixtures. */
export const FIXTURES = join(import.meta.dir, "..", "fixtures");

/** Longest any single wait in these helpers may take before the test fails. */
const WAIT_MS = 10_000;

/** POST a spec; answers status and parsed body. */
export function submit(a: TestAgent, spec: unknown, query = ""): Promise<{ status: number; body: any }> {
  return a.json("POST", `/api/v1/tasks${query}`, { spec });
}

/** POST a spec that must be accepted; answers the task id and admission. */
export async function submitOk(a: TestAgent, spec: unknown): Promise<{ id: string; admission: string }> {
  const r = await submit(a, spec);
  if (r.status !== 201) throw new Error(`submit answered ${r.status}: ${JSON.stringify(r.body)}`);
  return { id: r.body.task_id, admission: r.body.admission };
}

export async function getTask(a: TestAgent, id: string): Promise<Task> {
  const r = await a.json("GET", `/api/v1/tasks/${id}`);
  if (r.status !== 200) throw new Error(`GET task answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.task;
}

/** The run history; typed loosely so tests can compare it with `expect.any(…)` shapes. */
export async function getRuns(a: TestAgent, id: string): Promise<(TaskRun & Record<string, any>)[]> {
  const r = await a.json("GET", `/api/v1/tasks/${id}/runs`);
  if (r.status !== 200) throw new Error(`GET runs answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.runs;
}

/** Long-poll until the task is terminal; fails if it is not within the wait. */
export async function waitTerminal(a: TestAgent, id: string, timeoutMs = WAIT_MS): Promise<Task> {
  const r = await a.json("GET", `/api/v1/tasks/${id}/wait?timeoutMs=${timeoutMs}`);
  if (r.status !== 200) throw new Error(`wait answered ${r.status}: ${JSON.stringify(r.body)}`);
  const task: Task = r.body.task;
  if (task.status.phase === "pending" || task.status.phase === "running") {
    throw new Error(`task ${id} still ${task.status.phase} after ${timeoutMs} ms`);
  }
  return task;
}

/** Iterate SSE events of `path` until `stop` returns true; fails if the stream ends first or the wait runs out. */
async function untilSse<T>(a: TestAgent, path: string, pick: (e: SseEvent) => T | undefined, what: string): Promise<T> {
  const res = await fetch(a.url + path, { signal: AbortSignal.timeout(WAIT_MS) });
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${await res.text()}`);
  try {
    for await (const e of readSse(res)) {
      const hit = pick(e);
      if (hit !== undefined) return hit;
    }
  } catch (err) {
    throw new Error(`waiting for ${what}: ${String(err)}`);
  }
  throw new Error(`stream ${path} ended before ${what}`);
}

/** Wait (over the task's log stream) for an output line matching `match`; answers the line. */
export function waitForLine(a: TestAgent, id: string, match: (line: string) => boolean): Promise<string> {
  return untilSse(
    a,
    `/api/v1/tasks/${id}/logs`,
    (e) => (e.event === "chunk" && match(e.data.line) ? (e.data.line as string) : undefined),
    `a matching output line of ${id}`,
  );
}

/** Wait for the `pid=N` line printed by core-block.sh; answers N. */
export async function waitForPid(a: TestAgent, id: string): Promise<number> {
  const line = await waitForLine(a, id, (l) => l.startsWith("pid="));
  return Number(line.slice(4));
}

/** Wait (over the watch stream, which replays retained changes) for a state of the task matching `match`. */
export function waitForState(a: TestAgent, id: string, match: (task: Task) => boolean): Promise<Task> {
  return untilSse(
    a,
    "/api/v1/events",
    (e) => (e.event === "task" && e.data.metadata.id === id && match(e.data) ? (e.data as Task) : undefined),
    `a matching state of ${id}`,
  );
}

/** A temp dir removed on dispose. */
export function tempDir(prefix = "tasklane-core-"): { path: string } & Disposable {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

/** Create a fifo at `dir/name` and answer its path. */
export function makeFifo(dir: string, name: string): string {
  const path = join(dir, name);
  const r = Bun.spawnSync(["mkfifo", path]);
  if (r.exitCode !== 0) throw new Error(`mkfifo ${path} failed: ${r.stderr.toString()}`);
  return path;
}

/**
 * Release a core-block.sh task by writing one line into its fifo. The write
 * happens in a helper process, so it never blocks this (the agent's) event
 * loop; resolves when the line was taken by a reader.
 */
export async function release(fifo: string): Promise<void> {
  const p = Bun.spawn(["bash", "-c", 'echo go > "$1"', "release", fifo], { stdout: "ignore", stderr: "ignore" });
  // Nobody opening the fifo for reading would block the writer forever: bound it.
  const timer = setTimeout(() => p.kill("SIGKILL"), WAIT_MS);
  const code = await p.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`release of ${fifo} failed (exit ${code}${p.signalCode ? `, ${p.signalCode}` : ""}): no reader?`);
}

/** Spec running core-block.sh: blocks on `fifo`, logs start/end of `name` to `out`. */
export function blockSpec(fifo: string, name: string, out = "", extra: Record<string, unknown> = {}): Record<string, unknown> {
  const env = (extra.env as { key: string; value: string }[] | undefined) ?? [];
  const { env: _env, ...rest } = extra;
  return {
    slot: `s-${crypto.randomUUID().slice(0, 8)}`,
    kind: {
      subprocess: {
        mode: { command: { command: "bash", args: [join(FIXTURES, "core-block.sh"), fifo, name, ...(out ? [out] : [])] } },
        env,
      },
    },
    killGraceMs: 2000,
    ...rest,
  };
}

