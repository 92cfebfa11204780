import { describe, expect, test } from "bun:test";
import { createLogHub, MAX_UNSTORED_IDS, type LogSink } from "../../src/logs/log-hub.ts";
import type { LogEvent, LogRecord } from "../../src/tasks/model.ts";

/** In-memory sink that records every call. */
function memorySink(initial: Record<string, LogRecord[]> = {}) {
  const data = new Map<string, LogRecord[]>(Object.entries(initial).map(([k, v]) => [k, [...v]]));
  const appends: { taskId: string; ids: number[] }[] = [];
  const trims: { taskId: string; beforeId: number }[] = [];
  const sink: LogSink = {
    append(taskId, records) {
      appends.push({ taskId, ids: records.map((r) => r.id) });
      data.set(taskId, [...(data.get(taskId) ?? []), ...records]);
    },
    load(taskId, limit) {
      return (data.get(taskId) ?? []).slice(-limit);
    },
    trim(taskId, beforeId) {
      trims.push({ taskId, beforeId });
      data.set(taskId, (data.get(taskId) ?? []).filter((r) => r.id >= beforeId));
    },
  };
  return { sink, data, appends, trims };
}

async function collect(it: AsyncIterable<LogRecord[]>): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const batch of it) out.push(...batch);
  return out;
}

const chunk = (attempt: number, stream: "stdout" | "stderr", seq: number, line: string, ts = 10): LogEvent => ({
  type: "chunk",
  attempt,
  stream,
  seq,
  ts,
  line,
});
const numbered = (events: LogEvent[], firstId = 1): LogRecord[] => events.map((event, i) => ({ id: firstId + i, event }));

describe("log hub", () => {
  test("seq counts per stream and restarts each attempt; markers span runs in one subscription", async () => {
    const hub = createLogHub({ retain: 100 });
    hub.runStarted("t1", 1, 1000);
    const sub = hub.subscribe("t1", { follow: true });
    hub.lines("t1", 1, "stdout", ["a", "b"], 10);
    hub.lines("t1", 1, "stderr", ["e"], 11);
    hub.lines("t1", 1, "stdout", ["c"], 12);
    hub.runFinished("t1", 1, 1, 2000);
    hub.runStarted("t1", 2, 3000);
    hub.lines("t1", 2, "stdout", ["d"], 13);
    hub.lines("t1", 2, "stderr", [], 14);
    hub.runFinished("t1", 2, undefined, 4000);
    hub.end("t1");

    const got = await collect(sub);
    expect(got).toEqual(
      numbered([
        { type: "runStarted", attempt: 1, startedAt: 1000 },
        chunk(1, "stdout", 0, "a", 10),
        chunk(1, "stdout", 1, "b", 10),
        chunk(1, "stderr", 0, "e", 11),
        chunk(1, "stdout", 2, "c", 12),
        { type: "runFinished", attempt: 1, exitCode: 1, finishedAt: 2000 },
        { type: "runStarted", attempt: 2, startedAt: 3000 },
        chunk(2, "stdout", 0, "d", 13),
        { type: "runFinished", attempt: 2, finishedAt: 4000 },
      ]),
    );
    // A signal death has no exitCode key at all.
    expect(Object.keys(got[8]?.event ?? {})).toEqual(["type", "attempt", "finishedAt"]);
    expect(hub.stats()).toEqual({ tasks: 1, events: 9, subscribers: 0, lagged: 0 });
    hub.close();
  });

  test("a subscriber of a not yet started task told live waits for the first run", async () => {
    const hub = createLogHub({ retain: 10 });
    const done = collect(hub.subscribe("t", { follow: true, live: true }));
    hub.runStarted("t", 1, 5);
    hub.lines("t", 1, "stdout", ["x"], 6);
    hub.end("t");
    expect(await done).toEqual(numbered([{ type: "runStarted", attempt: 1, startedAt: 5 }, chunk(1, "stdout", 0, "x", 6)]));
    hub.close();
  });

  test("a slow subscriber sees lagged with the exact count and the hub counts it", async () => {
    const lags: number[] = [];
    const hub = createLogHub({ retain: 10, onLagged: (n) => lags.push(n) });
    hub.runStarted("t", 1, 0);
    const sub = hub.subscribe("t", { follow: true });
    hub.lines("t", 1, "stdout", Array.from({ length: 30 }, (_, i) => `l${i}`), 1);
    hub.end("t");
    const got = await collect(sub);
    expect(got[0]).toEqual({ id: 21, event: { type: "lagged", skipped: 21 } });
    expect(got.map((r) => r.id)).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]);
    expect(lags).toEqual([21]);
    expect(hub.stats().lagged).toBe(21);
    hub.close();
  });

  test("tail returns the last n lines of one stream from the retained events", () => {
    const hub = createLogHub({ retain: 5 });
    hub.runStarted("t", 1, 0);
    hub.lines("t", 1, "stdout", ["o1", "o2", "o3"], 1);
    hub.lines("t", 1, "stderr", ["e1"], 2);
    hub.lines("t", 1, "stdout", ["o4"], 3);
    hub.runFinished("t", 1, 0, 4);
    expect(hub.tail("t", "stdout", 2)).toEqual(["o3", "o4"]);
    expect(hub.tail("t", "stdout", 10)).toEqual(["o2", "o3", "o4"]); // o1 fell out of the ring of 5
    expect(hub.tail("t", "stderr", 10)).toEqual(["e1"]);
    expect(hub.tail("t", "stdout", 0)).toEqual([]);
    expect(hub.tail("nope", "stdout", 3)).toEqual([]);
    hub.close();
  });

  test("end persists only that task's unpersisted events, without a flush", () => {
    const { sink, appends } = memorySink();
    const hub = createLogHub({ retain: 100, sink });
    hub.runStarted("a", 1, 0);
    hub.runStarted("b", 1, 0);
    hub.lines("a", 1, "stdout", ["x"], 1);
    hub.runFinished("a", 1, 0, 2);
    hub.end("a");
    expect(appends).toEqual([{ taskId: "a", ids: [1, 2, 3] }]);
    hub.end("a"); // nothing new
    expect(appends.length).toBe(1);
    hub.close();
  });

  test("flush writes only retained, unpersisted events, never more than retain per task", () => {
    const { sink, data, appends, trims } = memorySink();
    const hub = createLogHub({ retain: 100, sink });
    hub.runStarted("t", 1, 0);
    const many = Array.from({ length: 10_000 }, (_, i) => `line ${i}`);
    hub.lines("t", 1, "stdout", many, 1);
    hub.flush();
    expect(appends).toEqual([{ taskId: "t", ids: Array.from({ length: 100 }, (_, i) => 9902 + i) }]);
    expect(trims).toEqual([{ taskId: "t", beforeId: 9902 }]);

    hub.flush(); // nothing new
    expect(appends.length).toBe(1);

    hub.lines("t", 1, "stderr", ["e0", "e1"], 2);
    hub.runFinished("t", 1, 0, 3);
    hub.flush();
    expect(appends[1]).toEqual({ taskId: "t", ids: [10002, 10003, 10004] });
    expect(data.get("t")?.slice(-3)).toEqual([
      { id: 10002, event: chunk(1, "stderr", 0, "e0", 2) },
      { id: 10003, event: chunk(1, "stderr", 1, "e1", 2) },
      { id: 10004, event: { type: "runFinished", attempt: 1, exitCode: 0, finishedAt: 3 } },
    ]);
    expect(data.get("t")?.length).toBe(100);
    hub.close();
  });

  test("a task known only to the sink replays its events, ends, and is forgotten again", async () => {
    const stored = numbered(
      [
        { type: "runStarted", attempt: 1, startedAt: 0 },
        chunk(1, "stdout", 0, "hi"),
        { type: "runFinished", attempt: 1, exitCode: 0, finishedAt: 1 },
      ],
      41,
    );
    const { sink } = memorySink({ old: stored });
    const hub = createLogHub({ retain: 100, sink });
    expect(await collect(hub.subscribe("old", { follow: true }))).toEqual(stored);
    expect(await collect(hub.subscribe("old", { after: 42, follow: false }))).toEqual(stored.slice(2));
    expect(hub.tail("old", "stdout", 5)).toEqual(["hi"]);
    expect(hub.stats()).toEqual({ tasks: 0, events: 0, subscribers: 0, lagged: 0 });
    expect(await collect(hub.subscribe("unknown", { follow: true }))).toEqual([]);
    expect(hub.stats()).toEqual({ tasks: 0, events: 0, subscribers: 0, lagged: 0 });
    hub.close();
  });

  test("ids continue after re-creating the hub over the same sink", async () => {
    const { sink } = memorySink();
    const first = createLogHub({ retain: 10, sink });
    first.runStarted("t", 1, 0);
    first.lines("t", 1, "stdout", ["a", "b"], 1);
    first.runFinished("t", 1, 0, 2);
    first.end("t");
    first.close(); // flushes

    const second = createLogHub({ retain: 10, sink });
    second.reopen("t");
    const sub = second.subscribe("t", { after: 4, follow: true });
    second.runStarted("t", 2, 3);
    second.lines("t", 2, "stdout", ["c"], 4);
    second.end("t");
    expect(await collect(sub)).toEqual(
      numbered([{ type: "runStarted", attempt: 2, startedAt: 3 }, chunk(2, "stdout", 0, "c", 4)], 5),
    );
    second.close();

    const third = createLogHub({ retain: 10, sink });
    third.runStarted("t", 3, 5);
    expect(await collect(third.subscribe("t", { after: 6, follow: false }))).toEqual(
      numbered([{ type: "runStarted", attempt: 3, startedAt: 5 }], 7),
    );
    third.close();
  });

  test("after an unclean stop a task continues above every id the crashed hub may have handed out", async () => {
    const { sink, data } = memorySink();
    const crashed = createLogHub({ retain: 10, sink });
    crashed.runStarted("t", 1, 0);
    crashed.lines("t", 1, "stdout", ["a", "b", "c"], 1);
    crashed.flush(); // 1..4 stored
    const reader = crashed.subscribe("t", { follow: true })[Symbol.asyncIterator]();
    crashed.lines("t", 1, "stdout", ["d", "e"], 2); // 5, 6: handed out, never stored
    const seen = await reader.next();
    expect(seen.done ? [] : seen.value.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(crashed.closedClean).toBe(false); // it dies here: no close()

    const after = createLogHub({ retain: 10, sink });
    after.afterUncleanStop(["t"]);
    const gap = 4 + MAX_UNSTORED_IDS + 1;
    // The marker is stored at once: a second crash continues above it.
    expect(data.get("t")?.at(-1)).toEqual({ id: gap, event: { type: "lagged", skipped: 1 } });
    after.runFinished("t", 1, undefined, 3);
    after.end("t");
    const finished: LogRecord = { id: gap + 1, event: { type: "runFinished", attempt: 1, finishedAt: 3 } };
    // Whatever the reader got before the crash, it is told, and nothing it saw is named again.
    for (const cursor of [6, 5, 4, 2]) {
      const expected: LogRecord[] = [
        ...numbered([chunk(1, "stdout", 1, "b", 1), chunk(1, "stdout", 2, "c", 1)], 3).filter((r) => r.id > cursor),
        { id: gap, event: { type: "lagged", skipped: gap - Math.max(cursor, 4) } },
        finished,
      ];
      expect(await collect(after.subscribe("t", { after: cursor, follow: false }))).toEqual(expected);
    }
    // A new reader sees the gap too; none of it counts as a slow reader's loss.
    expect((await collect(after.subscribe("t", { follow: false }))).map((r) => r.id)).toEqual([1, 2, 3, 4, gap, gap + 1]);
    expect(after.stats().lagged).toBe(0);

    // A second crash before anything is stored after the marker: above it again.
    after.lines("t", 1, "stdout", ["lost"], 4); // gap + 2, not stored
    const again = createLogHub({ retain: 10, sink });
    again.afterUncleanStop(["t"]);
    expect(data.get("t")?.at(-1)).toEqual({ id: gap + 1 + MAX_UNSTORED_IDS + 1, event: { type: "lagged", skipped: 1 } });
    again.runStarted("t", 2, 5);
    again.close();
    expect(again.closedClean).toBe(true);

    // After a clean stop ids simply continue.
    const clean = createLogHub({ retain: 10, sink });
    clean.runStarted("t", 3, 6);
    clean.close();
    expect(data.get("t")?.slice(-2).map((r) => r.id)).toEqual([gap + MAX_UNSTORED_IDS + 3, gap + MAX_UNSTORED_IDS + 4]);
  });

  test("a task that numbers flushAhead ids past the last written is written at once, without a flush", () => {
    const { sink, appends } = memorySink();
    const hub = createLogHub({ retain: 100, sink, flushAhead: 5 });
    hub.runStarted("t", 1, 0);
    hub.lines("t", 1, "stdout", ["1", "2", "3", "4"], 1);
    expect(appends).toEqual([]); // 5 ids ahead: still waiting for the timed flush
    hub.lines("t", 1, "stdout", ["5"], 1);
    expect(appends).toEqual([{ taskId: "t", ids: [1, 2, 3, 4, 5, 6] }]);
    hub.lines("t", 1, "stdout", ["6", "7", "8", "9", "10", "11"], 1);
    expect(appends[1]).toEqual({ taskId: "t", ids: [7, 8, 9, 10, 11, 12] });
    expect(() => createLogHub({ retain: 1, flushAhead: 0 })).toThrow(RangeError);
    hub.close();
  });

  test("closedClean only when close() wrote every event", () => {
    const failing: LogSink = {
      append() {
        throw new Error("disk gone");
      },
      load: () => [],
    };
    const hub = createLogHub({ retain: 10, sink: failing });
    hub.runStarted("t", 1, 0);
    expect(() => hub.close()).toThrow("disk gone");
    expect(hub.closedClean).toBe(false);
    const fine = createLogHub({ retain: 10 });
    expect(fine.closedClean).toBe(false);
    fine.close();
    expect(fine.closedClean).toBe(true);
  });

  test("drop closes subscriptions; evict frees only ended, unwatched tasks and persists them first", async () => {
    const { sink, data } = memorySink();
    const hub = createLogHub({ retain: 10, sink });
    hub.runStarted("a", 1, 0);
    const pending = collect(hub.subscribe("a", { follow: true }));
    hub.drop("a");
    expect(await pending).toEqual(numbered([{ type: "runStarted", attempt: 1, startedAt: 0 }]));
    expect(hub.stats()).toEqual({ tasks: 0, events: 0, subscribers: 0, lagged: 0 });
    expect(data.has("a")).toBe(false);

    hub.runStarted("b", 1, 0);
    hub.evict("b"); // still running: kept
    expect(hub.stats().tasks).toBe(1);
    const watcher = hub.subscribe("b", { follow: true });
    hub.end("b");
    hub.evict("b"); // has a subscriber: kept
    expect(hub.stats().tasks).toBe(1);
    watcher.close();
    hub.evict("b");
    expect(hub.stats()).toEqual({ tasks: 0, events: 0, subscribers: 0, lagged: 0 });
    expect(data.get("b")).toEqual(numbered([{ type: "runStarted", attempt: 1, startedAt: 0 }]));
    hub.close();
  });

  test("an ended ring is freed when its last follower leaves, persisted first (evict found it watched)", async () => {
    const { sink, data } = memorySink();
    const hub = createLogHub({ retain: 10, sink });
    hub.runStarted("t", 1, 0);
    hub.lines("t", 1, "stdout", ["a", "b"], 1);
    const draining = collect(hub.subscribe("t", { follow: true }));
    hub.end("t");
    hub.evict("t"); // the agent's one try, while the follower still drains: kept
    expect(hub.stats().tasks).toBe(1);
    expect((await draining).length).toBe(3); // the follower reaches the end and leaves
    expect(hub.stats()).toEqual({ tasks: 0, events: 0, subscribers: 0, lagged: 0 });
    expect(data.get("t")?.length).toBe(3);
    // Read again later: loaded from the sink, and forgotten once that reader is done.
    expect((await collect(hub.subscribe("t", { follow: false }))).length).toBe(3);
    expect(hub.stats().tasks).toBe(0);
    hub.close();
  });

  test("a running task's ring stays when its followers leave", () => {
    const hub = createLogHub({ retain: 10 });
    hub.runStarted("t", 1, 0);
    hub.subscribe("t", { follow: true }).close();
    expect(hub.stats().tasks).toBe(1);
    hub.close();
  });

  test("retainBytes bounds memory by approximate size", () => {
    const hub = createLogHub({ retain: 1000, retainBytes: 3 * (64 + 100) });
    hub.runStarted("t", 1, 0);
    hub.lines("t", 1, "stdout", Array.from({ length: 10 }, () => "x".repeat(100)), 1);
    expect(hub.stats().events).toBe(3);
    hub.close();
  });

  test("retainBytes counts a line's UTF-8 bytes, not its UTF-16 units", () => {
    const hub = createLogHub({ retain: 1000, retainBytes: 3 * (64 + 300) });
    hub.runStarted("t", 1, 0);
    hub.lines("t", 1, "stdout", Array.from({ length: 10 }, () => "字".repeat(100)), 1); // 300 bytes each
    expect(hub.stats().events).toBe(3);
    hub.close();
  });

  test("close ends every subscription and later subscriptions finish at once", async () => {
    const hub = createLogHub({ retain: 10 });
    hub.runStarted("t", 1, 0);
    const pending = collect(hub.subscribe("t", { follow: true }));
    hub.close();
    expect(await pending).toEqual(numbered([{ type: "runStarted", attempt: 1, startedAt: 0 }]));
    expect(await collect(hub.subscribe("t", { follow: true, live: true }))).toEqual([]);
    expect(hub.stats()).toEqual({ tasks: 0, events: 0, subscribers: 0, lagged: 0 });
  });
});
