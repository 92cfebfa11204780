/**
 * Task watch (CONTRACT §2): GET /api/v1/events (SSE) and GET /ws/tasks
 * (WebSocket) see a task's transitions in order and its deletion; SSE resumes
 * with ?after= and Last-Event-ID.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Task } from "../../src/tasks/model.ts";
import { commandSpec, startAgent, type TestAgent } from "../helpers/start-agent.ts";
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
    const res = await a.request("GET", "/ws/tasks");
    expect(res.headers.get("upgrade")).toBe("websocket");
    expect({ status: res.status, body: await res.json() }).toEqual({
      status: 426,
      body: {
        error: "InvalidRequest",
        message: '/ws/tasks is a WebSocket: open it with "Upgrade: websocket" (a WebSocket client), or use GET /api/v1/events (SSE)',
      },
    });
  });
});
