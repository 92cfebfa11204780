/**
 * Event ids after a kill -9 of the compiled binary (CONTRACT §3, docs/api.md
 * "Logs" and "Watch"): an id a client received never names another event
 * after the restart, and a client resuming with its last id is told with
 * `lagged` that events may be gone, then gets what happened since.
 */
import { describe, expect, test } from "bun:test";
import { readSse, type SseEvent } from "../helpers/sse.ts";
import { startBinary, submitTo as submit, tempDirs, type RunningBinary } from "./binary.ts";

const tempDir = tempDirs("tasklane-ids-crash-");

const b64 = (s: string) => Buffer.from(s).toString("base64");
const script = (body: string, extra: Record<string, unknown> = {}) => ({
  slot: `s-${crypto.randomUUID().slice(0, 8)}`,
  kind: { subprocess: { mode: { script: { runtime: "bash", body: b64(body) } } } },
  ...extra,
});

/** Read SSE events of `path` until `stop` says so (or the stream ends); bounded by a timeout. */
async function readUntil(agent: RunningBinary, path: string, stop: (e: SseEvent, all: SseEvent[]) => boolean, headers: Record<string, string> = {}): Promise<SseEvent[]> {
  const res = await fetch(agent.url + path, { headers, signal: AbortSignal.timeout(15_000) });
  expect(res.status).toBe(200);
  const got: SseEvent[] = [];
  for await (const e of readSse(res)) {
    got.push(e);
    if (stop(e, got)) break;
  }
  return got;
}

describe("event ids after kill -9", () => {
  test("log ids a client received are never reused; resuming with the last one gets lagged, then the new events", async () => {
    const dataDir = tempDir();
    const a = await startBinary({ dataDir });
    let taskId: string;
    const before = new Map<number, string>();
    let last = 0;
    try {
      // A line every 10 ms: the agent flushes every 100 ms, so the newest lines are not stored yet when it dies.
      // (Each task here also ends once the test's dir is gone, should the kill -9 leave it behind.)
      taskId = await submit(
        a,
        script(`i=0; while [ -d ${dataDir} ]; do echo "line $i"; i=$((i+1)); sleep 0.01; done; exit 1`, {
          restart: { type: "onFailure" },
          backoff: { jitter: "none", firstMs: 5, maxMs: 5, factor: 1 },
          maxAttempts: 3,
        }),
      );
      const res = await fetch(`${a.url}/api/v1/tasks/${taskId}/logs`, { signal: AbortSignal.timeout(15_000) });
      for await (const e of readSse(res)) {
        before.set(e.id!, JSON.stringify(e.data));
        last = e.id!;
        // Several flushes stored the earlier lines; kill -9 the moment this one arrives.
        if (e.event === "chunk" && e.data.seq >= 40) {
          a.proc.kill("SIGKILL");
          break;
        }
      }
    } finally {
      await a.stop("SIGKILL");
    }

    const b = await startBinary({ dataDir });
    try {
      // Resume as an EventSource would: from the last id received, until the second attempt logs.
      const resumed = await readUntil(b, `/api/v1/tasks/${taskId}/logs`, (e) => e.event === "chunk" && e.data.attempt === 2, {
        "Last-Event-ID": String(last),
      });
      const ids = resumed.map((e) => e.id!);
      expect(ids.every((id, i) => id > (i === 0 ? last : ids[i - 1]!))).toBe(true);
      // Lines stored after what the client read may come first; then one lagged says events may be lost,
      // then the recovery closes attempt 1 and attempt 2 starts.
      const lagged = resumed.findIndex((e) => e.event === "lagged");
      expect(lagged).toBeGreaterThanOrEqual(0);
      expect(resumed.slice(0, lagged).every((e) => e.event === "chunk" && e.data.attempt === 1)).toBe(true);
      expect(resumed.slice(lagged).map((e) => e.event)).toEqual(["lagged", "run-finished", "run-started", "chunk"]);
      expect(resumed[lagged]!.data.skipped).toBe(resumed[lagged]!.id! - (lagged === 0 ? last : resumed[lagged - 1]!.id!));

      // No id names two different events: what the agent has now agrees with what the client got before.
      const now = await readUntil(b, `/api/v1/tasks/${taskId}/logs?follow=false`, () => false);
      const reused = now.filter((e) => before.has(e.id!) && before.get(e.id!) !== JSON.stringify(e.data));
      expect(reused).toEqual([]);
      expect((await fetch(`${b.url}/api/v1/tasks/${taskId}/cancel`, { method: "POST" })).status).toBe(200);
    } finally {
      expect(await b.stop()).toBe(0);
    }
  }, 60_000);

  test("watch ids continue above the crashed agent's; resuming with the last one gets lagged, then the recovery's changes", async () => {
    const dataDir = tempDir();
    const a = await startBinary({ dataDir });
    let taskId: string;
    let last = 0;
    try {
      const watch = fetch(`${a.url}/api/v1/events`, { signal: AbortSignal.timeout(15_000) });
      for (let i = 0; i < 5; i++) await submit(a, script("true"));
      taskId = await submit(a, script(`while [ -d ${dataDir} ]; do sleep 0.1; done`));
      for await (const e of readSse(await watch)) {
        last = e.id!;
        if (e.event === "task" && e.data.metadata.id === taskId && e.data.status.phase === "running") break;
      }
    } finally {
      await a.stop("SIGKILL");
    }
    expect(last).toBeGreaterThan(10);

    const b = await startBinary({ dataDir });
    try {
      const resumed = await readUntil(b, "/api/v1/events", (e) => e.event === "task" && e.data.metadata.id === taskId, { "Last-Event-ID": String(last) });
      // One lagged first (how many of the crashed agent's ids name lost changes is not known: all are
      // counted), then the recovery's changes (of tasks still running or starting when it died).
      expect(resumed.map((e) => e.event)).toEqual(["lagged", ...resumed.slice(1).map(() => "task")]);
      const lagged = resumed[0]!;
      expect(lagged.id).toBeGreaterThan(last);
      expect(lagged.data.skipped).toBe(lagged.id! - last);
      const ids = resumed.map((e) => e.id!);
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
      expect(new Set(ids).size).toBe(ids.length);
      expect(resumed.at(-1)!.data.status).toEqual({ phase: "failed", attempt: 1, error: "interrupted: agent restarted" });
      // A watcher without a cursor is not told about the gap: it gets the retained changes.
      const fresh = await readUntil(b, "/api/v1/events", (e) => e.event === "task" && e.data.metadata.id === taskId);
      expect(fresh.map((e) => e.event)).toEqual(resumed.slice(1).map(() => "task"));
    } finally {
      expect(await b.stop()).toBe(0);
    }
  }, 60_000);
});
