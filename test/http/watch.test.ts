/**
 * Task watch (CONTRACT §2): GET /api/v1/events (SSE) and GET /ws/tasks
 * (WebSocket) see a task's transitions in order and its deletion; SSE resumes
 * with ?after= and Last-Event-ID.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Task } from "../../src/tasks/model.ts";
import { bashSpec, commandSpec, startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { readSse, type SseEvent } from "../helpers/sse.ts";
import { submitOk, waitTerminal } from "../helpers/task-control.ts";

let a: TestAgent;
beforeAll(async () => {
  a = await startAgent();
});
afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
});

/** Read watch events until `count` of them concern task `id`; answers those. */
async function watchFor(res: Response, id: string, count: number): Promise<SseEvent[]> {
  const got: SseEvent[] = [];
  for await (const e of readSse(res)) {
    const about = e.event === "task" ? e.data.metadata.id : e.data?.id;
    if (about === id) got.push(e);
    if (got.length === count) return got;
  }
  throw new Error(`watch stream ended after ${got.length} of ${count} events of ${id}`);
}

const events = (query = "", headers: Record<string, string> = {}) =>
  fetch(`${a.url}/api/v1/events${query}`, { headers, signal: AbortSignal.timeout(10_000) });

describe("GET /api/v1/events", () => {
  test("a task's transitions in order, then deleted; resume after any of them", async () => {
    const res = await events();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const { id } = await submitOk(a, commandSpec("echo", ["watched"], { slot: "watched" }));
    await waitTerminal(a, id);
    expect((await a.request("DELETE", `/api/v1/tasks/${id}`)).status).toBe(204);

    const got = await watchFor(res, id, 4);
    const state = (phase: string, rv: number, status: Record<string, unknown> = {}) => ({
      id: expect.any(Number),
      event: "task",
      data: {
        metadata: { id, resourceVersion: rv, createdAt: expect.any(Number), updatedAt: expect.any(Number) },
        spec: expect.objectContaining({ slot: "watched" }),
        status: { phase, ...status },
      },
    });
    expect(got).toEqual([
      state("pending", 1, { attempt: 0 }),
      state("running", 2, { attempt: 1 }),
      state("succeeded", 3, { attempt: 1, exitCode: 0 }),
      { id: expect.any(Number), event: "deleted", data: { id } },
    ]);
    const ids = got.map((e) => e.id!);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));

    // resume after the first: the other three, by ?after= and by Last-Event-ID
    expect(await watchFor(await events(`?after=${ids[0]}`), id, 3)).toEqual(got.slice(1));
    expect(await watchFor(await events("", { "Last-Event-ID": String(ids[1]) }), id, 2)).toEqual(got.slice(2));
    // both (an EventSource opened on ?after= reconnecting): after the later one, either way round
    expect(await watchFor(await events(`?after=${ids[0]}`, { "Last-Event-ID": String(ids[2]) }), id, 1)).toEqual(got.slice(3));
    expect(await watchFor(await events(`?after=${ids[2]}`, { "Last-Event-ID": String(ids[0]) }), id, 1)).toEqual(got.slice(3));
  });

  test("?slot= keeps only that slot's changes", async () => {
    const res = await events("?slot=kept");
    const other = await submitOk(a, commandSpec("true", [], { slot: "dropped-by-filter" }));
    const kept = await submitOk(a, commandSpec("true", [], { slot: "kept" }));
    await waitTerminal(a, other.id);
    await waitTerminal(a, kept.id);
    const seen: string[] = [];
    for await (const e of readSse(res)) {
      seen.push(`${e.data.metadata.id === kept.id ? "kept" : e.data.metadata.id}:${e.data.status.phase}`);
      if (e.data.status.phase === "succeeded") break;
    }
    expect(seen).toEqual(["kept:pending", "kept:running", "kept:succeeded"]);
  });
});

describe("GET /ws/tasks", () => {
  test("task_update messages in order, then task_deleted", async () => {
    const ws = new WebSocket(`${a.url.replace("http", "ws")}/ws/tasks`);
    const messages: any[] = [];
    let onMessage: (() => void) | undefined;
    ws.addEventListener("message", (m) => {
      messages.push(JSON.parse(String(m.data)));
      onMessage?.();
    });
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error("websocket error")), { once: true });
    });
    try {
      const { id } = await submitOk(a, commandSpec("echo", ["ws"], { slot: "ws" }));
      await waitTerminal(a, id);
      expect((await a.request("DELETE", `/api/v1/tasks/${id}`)).status).toBe(204);
      const mine = () =>
        messages.filter((m) => (m.event === "task_update" || m.event === "task_deleted") && m.task?.metadata?.id === id);
      // wait for the deletion to arrive (the socket delivers in order)
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no task_deleted; got ${JSON.stringify(mine())}`)), 10_000);
        const check = () => {
          if (mine().some((m) => m.event === "task_deleted")) {
            clearTimeout(timer);
            resolve();
          }
        };
        onMessage = check;
        check();
      });
      const update = (phase: string, status: Record<string, unknown>) => ({
        event: "task_update",
        id: expect.any(Number),
        task: {
          metadata: { id, resourceVersion: expect.any(Number), createdAt: expect.any(Number), updatedAt: expect.any(Number) },
          spec: expect.objectContaining({ slot: "ws" }),
          status: { phase, ...status },
        } satisfies Record<keyof Task, unknown>,
      });
      expect(mine()).toEqual([
        update("pending", { attempt: 0 }),
        update("running", { attempt: 1 }),
        update("succeeded", { attempt: 1, exitCode: 0 }),
        { event: "task_deleted", id: expect.any(Number), task: { metadata: { id } } },
      ]);
    } finally {
      ws.close();
    }
  });
  test("a bad query gets an error message, then close code 1008 (the caller's mistake, not 1011 for an agent fault)", async () => {
    for (const [query, message] of [
      ["?after=soon", 'after: must be a non-negative integer, got "soon"'],
      ["?slott=ws", 'unknown query parameter "slott"; allowed: after, slot, label, token'],
      ["?label=team", 'label: must be key=value, got "team"'],
    ]) {
      const ws = new WebSocket(`${a.url.replace("http", "ws")}/ws/tasks${query}`);
      const messages: unknown[] = [];
      ws.addEventListener("message", (m) => messages.push(JSON.parse(String(m.data))));
      const closed = await new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve, { once: true }));
      expect({ query, code: closed.code, reason: closed.reason, messages }).toEqual({
        query,
        code: 1008,
        reason: "InvalidRequest",
        messages: [{ event: "error", error: "InvalidRequest", message }],
      });
    }
  });
  test("a plain GET of the WebSocket route is a 426 that says how to open it, not a 404 'no such route'", async () => {
    // Also with the trailing slash, under which the router upgrades it too.
    for (const path of ["/ws/tasks", "/ws/tasks/"]) {
      const res = await a.request("GET", path);
      expect(res.headers.get("upgrade")).toBe("websocket");
      expect({ path, status: res.status, body: await res.json() }).toEqual({
        path,
        status: 426,
        body: {
          error: "InvalidRequest",
          message: '/ws/tasks is a WebSocket: open it with "Upgrade: websocket" (a WebSocket client), or use GET /api/v1/events (SSE)',
        },
      });
    }
  });

  test("more label filters than a task can hold are a 400, on the watch as on the list", async () => {
    const query = Array.from({ length: 65 }, (_, i) => `label=k${i}=v`).join("&");
    const res = await events(`?${query}`);
    expect({ status: res.status, body: await res.json() }).toEqual({
      status: 400,
      body: { error: "InvalidRequest", message: "label filters: at most 64 (a task holds at most 64 labels), got 65" },
    });
  });

  test("a WebSocket watch ended by the agent's stop is closed 1001 (going away), not 1000", async () => {
    await using b = await startAgent();
    const ws = new WebSocket(`${b.url.replace("http", "ws")}/ws/tasks`);
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve, { once: true });
      ws.addEventListener("error", reject, { once: true });
    });
    const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve, { once: true }));
    const stopped = b.agent.stop();
    const c = await closed;
    await stopped;
    expect({ code: c.code, reason: c.reason }).toEqual({ code: 1001, reason: "agent shutting down" });
  });
});

describe("watch ids across agent restarts", () => {
  test("after a clean stop ids continue: a watcher resumes where it was; an older cursor gets lagged with the exact count", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "tasklane-watch-restart-"));
    try {
      let taskId: string;
      let last = 0;
      const first = await startAgent({ dataDir });
      try {
        const res = await fetch(`${first.url}/api/v1/events`, { signal: AbortSignal.timeout(10_000) });
        for (const n of [1, 2]) await waitTerminal(first, (await submitOk(first, commandSpec("true", [], { slot: `quick-${n}` }))).id);
        // Runs again after the restart: the next agent changes it. (It ends by itself once the dir is gone.)
        const spec = bashSpec(`while [ -d ${dataDir} ]; do sleep 0.1; done`, {
          restart: { type: "onFailure" },
          backoff: { jitter: "none", firstMs: 1, maxMs: 1, factor: 1 },
        });
        taskId = (await submitOk(first, spec)).id;
        const stream = readSse(res)[Symbol.asyncIterator]();
        for (let r = await stream.next(); !r.done; r = await stream.next()) {
          last = r.value.id!;
          if (r.value.event === "task" && r.value.data.metadata.id === taskId && r.value.data.status.phase === "running") break;
        }
        const stopped = first.agent.stop();
        // The stop changes the task and ends the stream: read it to the end, so `last` is the agent's last id.
        for (let r = await stream.next(); !r.done; r = await stream.next()) last = r.value.id!;
        await stopped;
      } finally {
        await first.agent.stop();
      }
      expect(last).toBeGreaterThan(2);

      await using second = await startAgent({ dataDir });
      const resume = (headers: Record<string, string>) =>
        fetch(`${second.url}/api/v1/events`, { headers, signal: AbortSignal.timeout(10_000) });
      const rerun = { id: last + 1, event: "task", status: { phase: "running", attempt: 2 } };
      // Nothing was lost: the new agent's first change is the next id, without lagged.
      const [next] = await watchFor(await resume({ "Last-Event-ID": String(last) }), taskId, 1);
      expect({ id: next!.id, event: next!.event, status: next!.data.status }).toEqual(rerun);
      // Two changes of the previous agent are not retained: exactly two skipped, then the same change.
      const older: SseEvent[] = [];
      for await (const e of readSse(await resume({ "Last-Event-ID": String(last - 2) }))) {
        older.push(e);
        if (e.event === "task" && e.data.metadata.id === taskId) break;
      }
      expect(older.map((e) => (e.event === "lagged" ? { id: e.id, lagged: e.data.skipped } : { id: e.id, event: e.event, status: e.data.status }))).toEqual([
        { id: last, lagged: 2 },
        rerun,
      ]);
      expect((await second.request("POST", `/api/v1/tasks/${taskId}/cancel`)).status).toBe(200);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test("a cursor past the newest id gets lagged, then what is retained", async () => {
    const { id } = await submitOk(a, commandSpec("true", [], { slot: "past-head" }));
    await waitTerminal(a, id);
    const got: SseEvent[] = [];
    for await (const e of readSse(await events("?after=999999999&slot=past-head"))) {
      got.push(e);
      if (e.event === "task" && e.data.status.phase === "succeeded") break;
    }
    // As from 0: the lagged record counts what is gone below the oldest retained change (none here).
    expect(got[0]).toEqual({ id: 0, event: "lagged", data: { type: "lagged", skipped: 0 } });
    expect(got.slice(1).map((e) => e.data.status.phase)).toEqual(["pending", "running", "succeeded"]);
  });
});
