/**
 * Log event ids across agent restarts, with real agents over SQLite (CONTRACT
 * §3, docs/api.md "Logs"): after a clean stop they continue exactly; a cursor
 * past the newest id gets `lagged` first. The crash case (kill -9) is in
 * test/e2e/event-ids-after-crash.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSse, type SseEvent } from "../helpers/sse.ts";
import { bashSpec, startAgent } from "../helpers/start-agent.ts";
import { submitOk, waitTerminal } from "../helpers/task-control.ts";

const brief = (e: SseEvent) =>
  e.event === "chunk" ? { id: e.id, line: e.data.line } : e.event === "lagged" ? { id: e.id, lagged: e.data.skipped } : { id: e.id, type: e.data.type, attempt: e.data.attempt };

describe("log event ids across agent restarts", () => {
  test("after a clean stop a task's ids continue after its last event: no gap, no lagged", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "tasklane-log-restart-"));
    try {
      let taskId: string;
      let last = 0;
      const first = await startAgent({ dataDir });
      try {
        // Runs until stopped, again after the restart (and ends by itself once the dir is gone).
        const spec = bashSpec(`echo "attempt $TASKLANE_ATTEMPT"; echo ready; while [ -d ${dataDir} ]; do sleep 0.1; done`, {
          restart: { type: "onFailure" },
          backoff: { jitter: "none", firstMs: 1, maxMs: 1, factor: 1 },
        });
        taskId = (await submitOk(first, spec)).id;
        const res = await fetch(`${first.url}/api/v1/tasks/${taskId}/logs`, { signal: AbortSignal.timeout(10_000) });
        const stream = readSse(res)[Symbol.asyncIterator]();
        for (let r = await stream.next(); !r.done; r = await stream.next()) {
          last = r.value.id!;
          if (r.value.event === "chunk" && r.value.data.line === "ready") break;
        }
        const stopped = first.agent.stop();
        // The stop ends the run (runFinished) and the stream: read to its end for the last id.
        for (let r = await stream.next(); !r.done; r = await stream.next()) last = r.value.id!;
        await stopped;
      } finally {
        await first.agent.stop();
      }

      await using second = await startAgent({ dataDir });
      const got: SseEvent[] = [];
      const res = await fetch(`${second.url}/api/v1/tasks/${taskId}/logs`, { headers: { "Last-Event-ID": String(last) }, signal: AbortSignal.timeout(10_000) });
      for await (const e of readSse(res)) {
        got.push(e);
        if (e.event === "chunk" && e.data.line === "ready") break;
      }
      expect(got.map(brief)).toEqual([
        { id: last + 1, type: "runStarted", attempt: 2 },
        { id: last + 2, line: expect.stringMatching(/^attempt/) },
        { id: last + 3, line: "ready" },
      ]);
      expect((await second.request("POST", `/api/v1/tasks/${taskId}/cancel`)).status).toBe(200);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test("a cursor past the task's newest id gets lagged first, then the retained events", async () => {
    await using a = await startAgent({ persistent: true });
    const { id } = await submitOk(a, bashSpec("echo one; echo two"));
    await waitTerminal(a, id);
    for (const resume of [`?after=${2 ** 40}&follow=false`, "?follow=false"]) {
      const headers: Record<string, string> = resume.startsWith("?after") ? {} : { "Last-Event-ID": "5" };
      const got: SseEvent[] = [];
      for await (const e of readSse(await a.request("GET", `/api/v1/tasks/${id}/logs${resume}`, undefined, headers))) got.push(e);
      // As from 0: the lagged record counts what is gone below the oldest retained event (none here).
      expect(got.map(brief)).toEqual([
        { id: 0, lagged: 0 },
        { id: 1, type: "runStarted", attempt: 1 },
        { id: 2, line: "one" },
        { id: 3, line: "two" },
        { id: 4, type: "runFinished", attempt: 1 },
      ]);
    }
  });
});
