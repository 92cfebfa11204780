/**
 * Resuming a task's log (CONTRACT §3, docs/api.md "Logs"): `Last-Event-ID`
 * and `?after=` together resume after the later one, and a client resuming
 * with `Last-Event-ID` at the end of an ended log is answered 204 — what an
 * `EventSource` does when a stream ends is reconnect with that header, and
 * 204 is how a server tells it to stop. Checked with raw requests and with a
 * WHATWG EventSource client (the `eventsource` package) against a real agent.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { EventSource } from "eventsource";
import { join } from "node:path";
import { bashSpec, startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { collectSse, readSse, type SseEvent } from "../helpers/sse.ts";
import { blockSpec, makeFifo, release, submitOk, tempDir, waitForLine, waitTerminal } from "../helpers/task-control.ts";

let a: TestAgent;
let dir: ReturnType<typeof tempDir>;
/** A finished task whose log is run-started (1), chunk "one" (2), chunk "two" (3), run-finished (4). */
let done: string;
beforeAll(async () => {
  dir = tempDir();
  a = await startAgent({ dataDir: join(dir.path, "data") }); // kept across the restart below
  done = (await submitOk(a, bashSpec("echo one; echo two"))).id;
  await waitTerminal(a, done);
});
afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

const logs = (t: TestAgent, id: string, query = "", headers: Record<string, string> = {}, method = "GET") =>
  t.request(method, `/api/v1/tasks/${id}/logs${query}`, undefined, headers);
const ids = (events: SseEvent[]) => events.map((e) => e.id);

describe("raw requests", () => {
  test("the whole log, for reference: four events", async () => {
    const all = await collectSse(await logs(a, done));
    expect(all.map((e) => [e.id, e.event, e.data.line])).toEqual([
      [1, "run-started", undefined],
      [2, "chunk", "one"],
      [3, "chunk", "two"],
      [4, "run-finished", undefined],
    ]);
  });

  test("Last-Event-ID at the last event of an ended log: 204, no body (GET and HEAD, with or without follow)", async () => {
    for (const [query, method] of [["", "GET"], ["?follow=false", "GET"], ["", "HEAD"]] as const) {
      const res = await logs(a, done, query, { "Last-Event-ID": "4" }, method);
      expect([res.status, await res.text()]).toEqual([204, ""]);
    }
  });

  test("Last-Event-ID before the end: 200 with what is left", async () => {
    const res = await logs(a, done, "", { "Last-Event-ID": "3" });
    expect(res.status).toBe(200);
    expect(ids(await collectSse(res))).toEqual([4]);
  });

  test("?after= alone at the end stays an empty 200 stream (a curl user's explicit read)", async () => {
    const res = await logs(a, done, "?after=4");
    expect(res.status).toBe(200);
    expect(await collectSse(res)).toEqual([]);
  });

  test("?after= and Last-Event-ID together: the later cursor wins, either way round", async () => {
    expect(ids(await collectSse(await logs(a, done, "?after=1", { "Last-Event-ID": "3" })))).toEqual([4]);
    expect(ids(await collectSse(await logs(a, done, "?after=3", { "Last-Event-ID": "1" })))).toEqual([4]);
    // An EventSource opened on ?after=1 reconnecting after it read everything: 204, not the events again.
    expect((await logs(a, done, "?after=1", { "Last-Event-ID": "4" })).status).toBe(204);
  });

  test("a Last-Event-ID past the log's numbering is not the end: 200, a lagged record and the retained events", async () => {
    const res = await logs(a, done, "", { "Last-Event-ID": "9" });
    expect(res.status).toBe(200);
    const got = await collectSse(res);
    expect(got[0]?.event).toBe("lagged");
    expect(ids(got.slice(1))).toEqual([1, 2, 3, 4]);
  });

  test("a bad Last-Event-ID is still a 400, also at the end of an ended log", async () => {
    expect(await a.json("GET", `/api/v1/tasks/${done}/logs?after=4`, undefined, { "Last-Event-ID": "x" })).toEqual({
      status: 400,
      body: { error: "InvalidRequest", message: 'Last-Event-ID: must be a non-negative integer, got "x"' },
    });
  });

  test("a running task caught up with: 200, and the stream goes on until the task ends", async () => {
    const f = makeFifo(dir.path, "caught-up");
    const { id } = await submitOk(a, blockSpec(f, "cu"));
    await waitForLine(a, id, (l) => l === "ready cu"); // events 1..3
    const res = await logs(a, id, "", { "Last-Event-ID": "3" });
    expect(res.status).toBe(200);
    const events = readSse(res);
    await release(f);
    const rest: SseEvent[] = [];
    for await (const e of events) rest.push(e);
    expect(rest.map((e) => e.event)).toEqual(["run-finished"]);
    // Now it has ended: the same resume is the end.
    expect((await logs(a, id, "", { "Last-Event-ID": String(rest[0]!.id) })).status).toBe(204);
  });

  test("after an agent restart the log comes from the store: the end is still 204", async () => {
    const dataDir = a.dataDir;
    await a[Symbol.asyncDispose]();
    a = await startAgent({ dataDir });
    expect((await logs(a, done, "", { "Last-Event-ID": "4" })).status).toBe(204);
    expect(ids(await collectSse(await logs(a, done, "", { "Last-Event-ID": "2" })))).toEqual([3, 4]);
  });
});

/** What one EventSource saw: every event (id and type), and every request it made (Last-Event-ID sent, status). */
interface Session {
  events: [string, string][];
  requests: { lastEventId: string | null; status: number }[];
  /** Settles when the source gave up for good (readyState CLOSED after an error). */
  closed: Promise<void>;
  source: EventSource;
}

function eventSource(url: string): Session {
  const requests: Session["requests"] = [];
  const events: Session["events"] = [];
  const source = new EventSource(url, {
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      requests.push({ lastEventId: new Headers(init?.headers).get("last-event-id"), status: res.status });
      return res;
    },
  });
  for (const type of ["run-started", "chunk", "run-finished", "lagged"]) {
    source.addEventListener(type, (e) => events.push([e.lastEventId, type]));
  }
  const closed = new Promise<void>((resolve) => {
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) resolve();
    });
  });
  return { events, requests, closed, source };
}

describe("a WHATWG EventSource", () => {
  const everything: [string, string][] = [
    ["1", "run-started"],
    ["2", "chunk"],
    ["3", "chunk"],
    ["4", "run-finished"],
  ];

  test("on an ended log (plain, and opened with ?after=1): every event once, one reconnect answered 204, then it stops", async () => {
    const plain = eventSource(`${a.url}/api/v1/tasks/${done}/logs`);
    const after = eventSource(`${a.url}/api/v1/tasks/${done}/logs?after=1`);
    await Promise.all([plain.closed, after.closed]);
    expect(plain.events).toEqual(everything);
    expect(after.events).toEqual(everything.slice(1));
    for (const s of [plain, after]) {
      expect(s.requests).toEqual([
        { lastEventId: null, status: 200 },
        { lastEventId: "4", status: 204 },
      ]);
      expect(s.source.readyState).toBe(EventSource.CLOSED);
    }
  });

  test("following a running task: live events, the end, then 204 on its reconnect", async () => {
    const f = makeFifo(dir.path, "es-live");
    const { id } = await submitOk(a, blockSpec(f, "es"));
    await waitForLine(a, id, (l) => l === "ready es");
    const s = eventSource(`${a.url}/api/v1/tasks/${id}/logs`);
    // Connected and caught up (run-started, pid=…, ready es) before the task ends.
    while (s.events.length < 3) await new Promise((resolve) => s.source.addEventListener("chunk", resolve, { once: true }));
    await release(f);
    await s.closed;
    expect(s.events.map(([, type]) => type)).toEqual(["run-started", "chunk", "chunk", "run-finished"]);
    expect(s.events.map(([eid]) => eid)).toEqual(["1", "2", "3", "4"]);
    expect(s.requests).toEqual([
      { lastEventId: null, status: 200 },
      { lastEventId: "4", status: 204 },
    ]);
  });
});
