/**
 * Task watch (extension): SSE `/api/v1/events`, WebSocket `/ws/tasks` and
 * gRPC `WatchTasks` see every transition of a retried task in order, resume
 * from a cursor, signal a watcher that stopped reading with `lagged` instead
 * of buffering for it (SSE and WebSocket, and gRPC too), and serve 1000
 * concurrent SSE watchers on loopback.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { blockSpec, makeFifo, release, tempDir } from "../helpers/task-control.ts";
import { createPushQueue, type WatchItem, type WatchStream } from "../contract/client.ts";
import { join } from "node:path";
import { createGrpcClient } from "../contract/grpc-client.ts";
import { createRestClient } from "../contract/rest-client.ts";
import { bashSpec, FAST_BACKOFF, normalized, uniqueSlot } from "../contract/specs.ts";
import { rawSse, rawWs } from "./raw-stream.ts";

// Real processes and servers: allow more than the 5 s default when run on its own.
setDefaultTimeout(30_000);

type WatchOpts = { after?: number; slot?: string; labels?: Record<string, string> };
type Watcher = (agent: TestAgent, opts: WatchOpts) => WatchStream;

/** WebSocket /ws/tasks as a watch stream (the browser-style client). */
function wsWatch(agent: TestAgent, opts: WatchOpts): WatchStream {
  const p = new URLSearchParams();
  if (opts.after !== undefined) p.set("after", String(opts.after));
  if (opts.slot !== undefined) p.set("slot", opts.slot);
  for (const [k, v] of Object.entries(opts.labels ?? {})) p.append("label", `${k}=${v}`);
  const ws = new WebSocket(`${agent.url.replace("http", "ws")}/ws/tasks?${p}`);
  const q = createPushQueue<WatchItem>(() => ws.close());
  ws.addEventListener("message", (m) => {
    const d = JSON.parse(String(m.data));
    if (d.event === "task_update") q.push({ id: d.id, type: "task", task: d.task });
    else if (d.event === "task_deleted") q.push({ id: d.id, type: "deleted", taskId: d.task.metadata.id });
    else if (d.event === "lagged") q.push({ id: d.id, type: "lagged", skipped: d.skipped });
    else q.fail(new Error(`unexpected websocket message ${String(m.data)}`));
  });
  ws.addEventListener("close", () => q.end());
  ws.addEventListener("error", () => q.fail(new Error("websocket error")));
  return {
    close() {
      ws.close();
      q.end();
    },
    [Symbol.dispose]() {
      this.close();
    },
    [Symbol.asyncIterator]: () => q.iterator(),
  };
}

const WATCHERS: [string, Watcher][] = [
  ["SSE /api/v1/events", (a, o) => createRestClient(a).watch(o)],
  ["WebSocket /ws/tasks", wsWatch],
  [
    "gRPC WatchTasks",
    (a, o) => {
      const c = createGrpcClient(a);
      const w = c.watch(o);
      return {
        close() {
          w.close();
          c[Symbol.dispose]();
        },
        [Symbol.dispose]() {
          this.close();
        },
        [Symbol.asyncIterator]: () => w[Symbol.asyncIterator](),
      };
    },
  ],
];

/** Read items until `done` accepts one (included); fails if the stream ends first. */
async function readUntil(stream: AsyncIterable<WatchItem>, done: (item: WatchItem, all: WatchItem[]) => boolean): Promise<WatchItem[]> {
  const got: WatchItem[] = [];
  for await (const item of stream) {
    got.push(item);
    if (done(item, got)) return got;
  }
  throw new Error(`watch ended after ${got.length} items: ${JSON.stringify(got.map((i) => i.type))}`);
}

const terminalOf = (id: string) => (i: WatchItem) =>
  i.type === "task" && i.task.metadata.id === id && ["succeeded", "failed", "timeout", "canceled", "exhausted"].includes(i.task.status.phase);

function expectIncreasing(ids: number[]): void {
  for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
}

let agent: TestAgent;
beforeAll(async () => {
  agent = await startAgent();
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
});

describe("watch: a retried task's transitions, in order, over every transport", () => {
  const slot = uniqueSlot("w");
  const spec = bashSpec("exit 1", { slot, restart: { type: "onFailure" }, backoff: FAST_BACKOFF, maxAttempts: 3 });
  let taskId = "";
  const seen = new Map<string, WatchItem[]>();

  beforeAll(async () => {
    const streams = WATCHERS.map(([name, watch]) => [name, watch(agent, { slot })] as const);
    const rest = createRestClient(agent);
    taskId = (await rest.submit(spec)).taskId;
    await Promise.all(streams.map(async ([name, s]) => seen.set(name, await readUntil(s, terminalOf(taskId)))));
    for (const [, s] of streams) s.close();
  });

  test.each(WATCHERS)("%s: pending→running→pending→…→exhausted, resourceVersion and ids strictly increasing", (name) => {
    const items = seen.get(name)!;
    const state = (resourceVersion: number, status: Record<string, unknown>): any => ({
      id: expect.any(Number),
      type: "task",
      task: {
        metadata: { id: taskId, resourceVersion, createdAt: expect.any(Number), updatedAt: expect.any(Number) },
        spec: normalized(spec),
        status,
      },
    });
    const failedRun = (attempt: number) => ({ phase: "pending", attempt, exitCode: 1, error: "exit code 1" });
    expect(items).toEqual([
      state(1, { phase: "pending", attempt: 0 }),
      state(2, { phase: "running", attempt: 1 }),
      state(3, failedRun(1)),
      state(4, { phase: "running", attempt: 2 }),
      state(5, failedRun(2)),
      state(6, { phase: "running", attempt: 3 }),
      state(7, { phase: "exhausted", attempt: 3, exitCode: 1, error: "exhausted: 3 of 3 attempts used (last: exit code 1)" }),
    ]);
    expectIncreasing(items.map((i) => i.id));
    // Every transport saw the same events with the same ids.
    expect(items).toEqual(seen.get(WATCHERS[0]![0])!);
  });

  test.each(WATCHERS)("%s: resuming after a cursor gives only the later events", async (name, watch) => {
    const items = seen.get(name)!;
    for (const k of [0, 3, 5]) {
      using s = watch(agent, { slot, after: items[k]!.id });
      const rest = items.slice(k + 1);
      expect(await readUntil(s, (_i, all) => all.length === rest.length)).toEqual(rest);
    }
  });

  test("a deletion is an event too, after the task's last state", async () => {
    const last = seen.get(WATCHERS[0]![0])!.at(-1)!;
    const streams = WATCHERS.map(([, watch]) => watch(agent, { slot, after: last.id }));
    await createRestClient(agent).delete(taskId);
    for (const s of streams) {
      const [item] = await readUntil(s, () => true);
      expect(item).toEqual({ id: expect.any(Number), type: "deleted", taskId });
      expect(item!.id).toBeGreaterThan(last.id);
      s.close();
    }
  });
});

describe("watch: filters", () => {
  test.each(WATCHERS)("%s: label=k=v filters are ANDed, and combine with slot", async (_name, watch) => {
    const suite = crypto.randomUUID().slice(0, 8);
    const slot = uniqueSlot("wl");
    const rest = createRestClient(agent);
    using both = watch(agent, { labels: { suite, team: "edge", env: "prod" } });
    using bySlot = watch(agent, { slot, labels: { suite } });
    const ids: string[] = [];
    for (const labels of [{ team: "edge", env: "dev" }, { team: "edge", env: "prod" }, { team: "core", env: "prod" }]) {
      ids.push((await rest.submit(bashSpec("true", { labels: { suite, ...labels }, slot: labels.team === "core" ? slot : uniqueSlot("wl") }))).taskId);
    }
    for (const id of ids) await rest.wait(id, 20_000);
    const phasesOf = async (s: WatchStream, id: string) =>
      (await readUntil(s, terminalOf(id))).map((i) => (i.type === "task" ? `${i.task.metadata.id === id ? "mine" : i.task.metadata.id} ${i.task.status.phase}` : i.type));
    expect(await phasesOf(both, ids[1]!)).toEqual(["mine pending", "mine running", "mine succeeded"]);
    expect(await phasesOf(bySlot, ids[2]!)).toEqual(["mine pending", "mine running", "mine succeeded"]);
  });
});

describe("watch: a watcher that stops reading is signalled, not buffered for", () => {
  test("slow SSE, WebSocket and gRPC watchers get one lagged with a positive count, then continue in order", async () => {
    await using b = await startAgent();
    const port = Number(new URL(b.url).port);
    const hold = (slot: string, args: string[] = []) =>
      b.json("POST", "/api/v1/tasks", { spec: { slot, kind: { subprocess: { mode: { command: { command: "true", args } } } }, hold: true } });
    expect((await hold("first")).status).toBe(201); // change 1
    const BIG = 6;
    const SMALL = 4200;
    const total = 1 + BIG + SMALL; // a fresh agent: change ids are 1..total

    const sse = await rawSse(port, "/api/v1/events");
    const ws = await rawWs(port, "/ws/tasks");
    sse.pause();
    ws.pause();
    // The gRPC watcher runs in a process of its own that the test stops: a paused
    // in-process grpc-js stream still lets the HTTP/2 layer read ahead.
    const child = Bun.spawn(["bun", join(import.meta.dir, "grpc-watch-child.ts"), b.grpcAddr, String(total)], {
      stdout: "pipe",
      stderr: "inherit",
    });
    using _reap = { [Symbol.dispose]: () => void (child.exitCode === null && child.kill("SIGKILL")) }; // also if stopped
    const childOut = child.stdout.getReader();
    expect(new TextDecoder().decode((await childOut.read()).value)).toBe("ready\n");
    process.kill(child.pid, "SIGSTOP");
    // A few ~2 MB changes fill the buffers of all three (they read nothing) …
    const big = "y".repeat(2_000_000);
    for (let i = 0; i < BIG; i++) expect((await hold(`big-${i}`, [big])).status).toBe(201);
    // … then more small changes than the watch ring keeps (4096).
    for (let i = 0; i < SMALL; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => hold(`small-${i + j}`)));
    sse.resume();
    ws.resume();
    process.kill(child.pid, "SIGCONT");

    // Ids are consecutive except where a lagged says exactly how many were skipped.
    const account = (kind: string, events: { id: number; lagged?: number }[]) => {
      let last = 0;
      for (const e of events) {
        const expected = last + (e.lagged ?? 1);
        if (e.id !== expected) throw new Error(`${kind}: event after ${last} has id ${e.id}, expected ${expected}`);
        last = e.id;
      }
      return last;
    };

    const sseEvents: { id: number; lagged?: number }[] = [];
    const sseLagged: unknown[] = [];
    for await (const e of sse) {
      if (e.event === "lagged") sseLagged.push(e.data);
      sseEvents.push({ id: e.id!, lagged: e.event === "lagged" ? e.data.skipped : undefined });
      if (e.id === total) break;
    }
    sse.close();
    expect(sseLagged).toEqual([{ type: "lagged", skipped: expect.any(Number) }]);
    expect((sseLagged[0] as { skipped: number }).skipped).toBeGreaterThan(0);
    expect(account("SSE", sseEvents)).toBe(total);

    const wsEvents: { id: number; lagged?: number }[] = [];
    const wsLagged: unknown[] = [];
    for await (const m of ws) {
      if (m.event === "lagged") wsLagged.push(m);
      wsEvents.push({ id: m.id, lagged: m.event === "lagged" ? m.skipped : undefined });
      if (m.id === total) break;
    }
    ws.close();
    expect(wsLagged).toEqual([{ event: "lagged", id: expect.any(Number), skipped: expect.any(Number) }]);
    expect((wsLagged[0] as { skipped: number }).skipped).toBeGreaterThan(0);
    expect(account("WebSocket", wsEvents)).toBe(total);

    let report = "";
    for (let r = await childOut.read(); !r.done; r = await childOut.read()) report += new TextDecoder().decode(r.value);
    expect(await child.exited).toBe(0);
    const grpcResult = JSON.parse(report);
    expect(grpcResult).toEqual({ last: total, lagged: [{ id: expect.any(Number), skipped: expect.any(Number) }], problems: [] });
    expect(grpcResult.lagged[0].skipped).toBeGreaterThan(0);
  }, 30_000); // heavy: thousands of changes; give a loaded 2-core machine room
});

describe("watch: 1000 concurrent SSE watchers", () => {
  test("each sees the final state of its task, then closes; bounded time", async () => {
    await using b = await startAgent();
    using dir = tempDir("tasklane-watch-");
    const port = Number(new URL(b.url).port);
    const TASKS = 10;
    const WATCHERS_N = 1000;
    const rest = createRestClient(b);
    const tasks: { id: string; slot: string; fifo: string }[] = [];
    for (let i = 0; i < TASKS; i++) {
      const fifo = makeFifo(dir.path, `go-${i}`);
      const spec = blockSpec(fifo, `t${i}`, "", { slot: uniqueSlot("many") });
      const { taskId } = await rest.submit(spec);
      tasks.push({ id: taskId, slot: spec.slot as string, fifo });
    }
    const t0 = performance.now();
    const watchers = [];
    for (let i = 0; i < WATCHERS_N; i += 100) {
      watchers.push(...(await Promise.all(Array.from({ length: 100 }, (_, j) => rawSse(port, `/api/v1/events?slot=${tasks[(i + j) % TASKS]!.slot}`)))));
    }
    const connectedMs = performance.now() - t0;
    // Every watcher is subscribed (its response head arrived) while the tasks run; now let them finish.
    const finals = watchers.map(async (w, i) => {
      const task = tasks[i % TASKS]!;
      try {
        for await (const e of w) {
          if (e.event === "task" && e.data.metadata.id === task.id && e.data.status.phase !== "pending" && e.data.status.phase !== "running") {
            return e.data.status.phase as string;
          }
        }
        return "stream ended";
      } finally {
        w.close();
      }
    });
    await Promise.all(tasks.map((t) => release(t.fifo)));
    const phases = await Promise.all(finals);
    const totalMs = performance.now() - t0;
    console.log(`1000 SSE watchers: connected in ${connectedMs.toFixed(0)} ms, all saw their task's final state after ${totalMs.toFixed(0)} ms`);
    expect(phases).toEqual(Array.from({ length: WATCHERS_N }, () => "succeeded"));
    expect(totalMs).toBeLessThan(15_000);
    // The agent let go of every subscription: its gauge of open SSE subscribers returns to 0.
    const openSse = async () => {
      const text = await (await fetch(`${b.url}/metrics`)).text();
      return Number(/^tasklane_stream_subscribers\{transport="sse"\} (\d+)$/m.exec(text)?.[1] ?? "NaN");
    };
    const deadline = Date.now() + 5000;
    let open = await openSse();
    while (open !== 0 && Date.now() < deadline) open = await openSse(); // each probe is a round trip, not a sleep
    expect(open).toBe(0);
  }, 30_000);
});
