/**
 * Live logs over SSE (CONTRACT §3): markers across retries in one
 * subscription, seq per stream and attempt, stdout/stderr apart, end of
 * stream, follow=false, resume (Last-Event-ID and ?after=), and a slow
 * consumer that gets exactly one exact `lagged` while a fast one on the same
 * task misses nothing and the task is never held back.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { bashSpec, startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { collectSse, readSse, type SseEvent } from "../helpers/sse.ts";
import {
  blockSpec,
  FIXTURES,
  makeFifo,
  release,
  submitOk,
  tempDir,
  waitForLine,
  waitTerminal,
} from "../helpers/task-control.ts";

let a: TestAgent;
let dir: ReturnType<typeof tempDir>;
beforeAll(async () => {
  dir = tempDir();
  a = await startAgent({ random: () => 0 });
});
afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

const logs = (t: TestAgent, id: string, query = "", headers: Record<string, string> = {}) =>
  t.request("GET", `/api/v1/tasks/${id}/logs${query}`, undefined, headers);

/** Sort the chunks between two markers by (stream, seq): the two pipes interleave freely. */
function normalize(events: SseEvent[]): SseEvent[] {
  const out: SseEvent[] = [];
  let chunks: SseEvent[] = [];
  const flush = () => {
    chunks.sort((x, y) => x.data.stream.localeCompare(y.data.stream) || x.data.seq - y.data.seq);
    out.push(...chunks);
    chunks = [];
  };
  for (const e of events) {
    if (e.event === "chunk") chunks.push(e);
    else {
      flush();
      out.push(e);
    }
  }
  flush();
  return out.map(({ event, data }) => ({ event, data }));
}

describe("one subscription over every attempt", () => {
  let id: string;
  let all: SseEvent[];

  beforeAll(async () => {
    const script = 'echo "out one"; echo "err one" >&2; echo "out two"; exit 1';
    const spec = bashSpec(script, {
      hold: true,
      restart: { type: "onFailure" },
      maxAttempts: 3,
      backoff: { jitter: "none", firstMs: 5, maxMs: 5, factor: 1 },
    });
    id = (await submitOk(a, spec)).id;
    const res = await logs(a, id); // subscribed before the first run
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    await a.json("POST", `/api/v1/tasks/${id}/start`);
    all = await collectSse(res); // ends by itself once the task is terminal
  });

  test("markers and chunks of all attempts, seq per stream restarting at 0, then the stream ends", async () => {
    const attempt = (n: number) => [
      { event: "run-started", data: { type: "runStarted", attempt: n, startedAt: expect.any(Number) } },
      { event: "chunk", data: { type: "chunk", attempt: n, stream: "stderr", seq: 0, ts: expect.any(Number), line: "err one" } },
      { event: "chunk", data: { type: "chunk", attempt: n, stream: "stdout", seq: 0, ts: expect.any(Number), line: "out one" } },
      { event: "chunk", data: { type: "chunk", attempt: n, stream: "stdout", seq: 1, ts: expect.any(Number), line: "out two" } },
      { event: "run-finished", data: { type: "runFinished", attempt: n, exitCode: 1, finishedAt: expect.any(Number) } },
    ];
    expect(normalize(all)).toEqual([...attempt(1), ...attempt(2), ...attempt(3)]);
    expect(all.map((e) => e.id)).toEqual(all.map((_, i) => i + 1));
    // the stream ended because the task is terminal
    expect((await a.json("GET", `/api/v1/tasks/${id}`)).body.task.status.phase).toBe("exhausted");
  });

  test("follow=false on a terminal task answers the retained events and closes", async () => {
    expect(await collectSse(await logs(a, id, "?follow=false"))).toEqual(all);
  });

  test("a new follower of a terminal task gets the retained events and the stream ends", async () => {
    expect(await collectSse(await logs(a, id))).toEqual(all);
  });

  test("resume with Last-Event-ID: only later events", async () => {
    expect(await collectSse(await logs(a, id, "", { "Last-Event-ID": "4" }))).toEqual(all.slice(4));
  });

  test("resume with ?after=N: only later events", async () => {
    expect(await collectSse(await logs(a, id, "?after=7"))).toEqual(all.slice(7));
    expect(await collectSse(await logs(a, id, `?after=${all.length}`))).toEqual([]);
  });

  test("a bad cursor is a 400", async () => {
    expect(await a.json("GET", `/api/v1/tasks/${id}/logs?after=x`)).toEqual({
      status: 400,
      body: { error: "InvalidRequest", message: 'after: must be a non-negative integer, got "x"' },
    });
    expect(await a.json("GET", `/api/v1/tasks/${id}/logs`, undefined, { "Last-Event-ID": "-1" })).toEqual({
      status: 400,
      body: { error: "InvalidRequest", message: 'Last-Event-ID: must be a non-negative integer, got "-1"' },
    });
  });
});

describe("a running task", () => {
  test("follow=false answers what is retained now and closes while the task still runs", async () => {
    const f = makeFifo(dir.path, "follow-false");
    const { id } = await submitOk(a, blockSpec(f, "ff"));
    await waitForLine(a, id, (l) => l === "ready ff");
    const got = await collectSse(await logs(a, id, "?follow=false"));
    expect(got).toEqual([
      { id: 1, event: "run-started", data: { type: "runStarted", attempt: 1, startedAt: expect.any(Number) } },
      { id: 2, event: "chunk", data: { type: "chunk", attempt: 1, stream: "stdout", seq: 0, ts: expect.any(Number), line: expect.stringMatching(/^pid=\d+$/) } },
      { id: 3, event: "chunk", data: { type: "chunk", attempt: 1, stream: "stdout", seq: 1, ts: expect.any(Number), line: "ready ff" } },
    ]);
    expect((await a.json("GET", `/api/v1/tasks/${id}`)).body.task.status.phase).toBe("running");

    // a follower resuming after id 2 gets id 3, then the end of the run, then the stream ends
    const res = await logs(a, id, "", { "Last-Event-ID": "2" });
    await release(f);
    const rest = await collectSse(res);
    expect(rest).toEqual([
      got[2]!,
      { id: 4, event: "run-finished", data: { type: "runFinished", attempt: 1, exitCode: 0, finishedAt: expect.any(Number) } },
    ]);
  });

  test("a run killed by a signal has no exitCode in its run-finished", async () => {
    const f = makeFifo(dir.path, "killed");
    const { id } = await submitOk(a, blockSpec(f, "k"));
    await waitForLine(a, id, (l) => l === "ready k");
    const res = await logs(a, id, "?after=3");
    await a.json("POST", `/api/v1/tasks/${id}/cancel`);
    expect(await collectSse(res)).toEqual([
      { id: 4, event: "run-finished", data: { type: "runFinished", attempt: 1, finishedAt: expect.any(Number) } },
    ]);
  });
});

describe("slow and fast consumers (--log-retain 100)", () => {
  const BURSTS = 100;
  const LINES = 50; // per burst: half the ring, so a reader that keeps up never lags
  const WIDTH = 4000; // ≈ 20 MB in all: far more than the socket buffers of a client that does not read
  const TOTAL = BURSTS * LINES;

  test("the slow one gets exactly one exact lagged, the fast one everything, and the task is not held back", async () => {
    await using b = await startAgent({ args: ["--log-retain", "100"] });
    using d = tempDir();
    const fifo = makeFifo(d.path, "go");
    const spec = {
      slot: "burst",
      kind: { subprocess: { mode: { command: { command: "bash", args: [join(FIXTURES, "core-burst.sh"), fifo, `${BURSTS}`, `${LINES}`, `${WIDTH}`] } } } },
      hold: true,
    };
    const { id } = await submitOk(b, spec);
    const slow = await logs(b, id); // subscribed, never read until the task is over
    const fast = await logs(b, id);
    expect([slow.status, fast.status]).toEqual([200, 200]);
    await b.json("POST", `/api/v1/tasks/${id}/start`);
    // The go-ahead for each burst travels through `cat` into the fifo.
    const gate = Bun.spawn(["bash", "-c", 'exec cat > "$1"', "gate", fifo], { stdin: "pipe", stdout: "ignore", stderr: "ignore" });

    const fastEvents: SseEvent[] = [];
    const it = readSse(fast)[Symbol.asyncIterator]();
    let chunks = 0;
    for (let burst = 0; burst < BURSTS; burst++) {
      gate.stdin.write("go\n");
      await gate.stdin.flush();
      while (chunks < (burst + 1) * LINES) {
        const next = await it.next();
        if (next.done) throw new Error(`fast stream ended after ${chunks} chunks`);
        fastEvents.push(next.value);
        if (next.value.event === "chunk") chunks++;
      }
    }
    for (let next = await it.next(); !next.done; next = await it.next()) fastEvents.push(next.value);
    await gate.stdin.end();
    await gate.exited;

    // The task finished while the slow client had not read a byte of it.
    const task = await waitTerminal(b, id);
    expect(task.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });

    // Fast: every line, in order, no lagged, ids 1..TOTAL+2.
    expect(fastEvents.filter((e) => e.event === "lagged")).toEqual([]);
    expect(fastEvents.map((e) => e.id)).toEqual(Array.from({ length: TOTAL + 2 }, (_, i) => i + 1));
    const fastChunks = fastEvents.filter((e) => e.event === "chunk");
    expect(fastChunks.length).toBe(TOTAL);
    fastChunks.forEach((e, i) => {
      if (e.data.seq !== i || e.data.stream !== "stdout" || !e.data.line.startsWith(`${String(i).padStart(8, "0")} x`)) {
        throw new Error(`fast chunk ${i} is wrong: ${JSON.stringify({ ...e.data, line: e.data.line.slice(0, 20) })}`);
      }
    });
    expect(fastEvents[0]!.event).toBe("run-started");
    expect(fastEvents.at(-1)!.event).toBe("run-finished");

    // Slow: exactly one lagged, and every event id is accounted for.
    const slowEvents = await collectSse(slow);
    const lagged = slowEvents.filter((e) => e.event === "lagged");
    expect(lagged.length).toBe(1);
    const skipped: number = lagged[0]!.data.skipped;
    expect(lagged[0]!.data).toEqual({ type: "lagged", skipped });
    expect(skipped).toBeGreaterThan(0);
    let last = 0;
    for (const e of slowEvents) {
      const expectedId = last + (e.event === "lagged" ? e.data.skipped : 1);
      if (e.id !== expectedId) throw new Error(`slow event after id ${last} has id ${e.id}, expected ${expectedId} (${e.event})`);
      last = e.id!;
    }
    expect(last).toBe(TOTAL + 2);
    const slowChunks = slowEvents.filter((e) => e.event === "chunk");
    expect(slowEvents.length - 1 + skipped).toBe(TOTAL + 2);
    expect(slowChunks.length + skipped).toBe(TOTAL + (slowEvents[0]!.event === "run-started" ? 0 : 1));
    expect(slowEvents.at(-1)).toEqual(fastEvents.at(-1));
    // what the slow one did get is identical to what the fast one got under the same ids
    const byId = new Map(fastEvents.map((e) => [e.id, e]));
    for (const e of slowEvents) if (e.event !== "lagged") expect(e).toEqual(byId.get(e.id)!);
  }, 15_000);
});
