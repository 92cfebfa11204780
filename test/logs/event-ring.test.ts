import { describe, expect, test } from "bun:test";
import { createEventRing, type EventRing, type Numbered } from "../../src/logs/event-ring.ts";

type Ev = { kind: "v"; v: number } | { kind: "lag"; skipped: number };

function ring(capacity: number, extra: { maxBytes?: number; onLagged?: (n: number) => void; markers?: boolean } = {}): EventRing<Ev> {
  return createEventRing<Ev>({
    capacity,
    lagged: (skipped) => ({ kind: "lag", skipped }),
    ...(extra.maxBytes !== undefined ? { maxBytes: extra.maxBytes, sizeOf: () => 10 } : {}),
    ...(extra.onLagged !== undefined ? { onLagged: extra.onLagged } : {}),
    ...(extra.markers ? { isMarker: (e: Ev) => e.kind === "lag" } : {}),
  });
}

const v = (n: number): Ev => ({ kind: "v", v: n });
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const values = (from: number, to: number): Ev[] => range(from, to).map(v);
/** Records with id = value, as the ring numbers them when values are appended in order from 1. */
const recs = (from: number, to: number): Numbered<Ev>[] => range(from, to).map((n) => ({ id: n, event: v(n) }));

async function collect<T>(it: AsyncIterable<T[]>): Promise<T[][]> {
  const batches: T[][] = [];
  for await (const batch of it) batches.push(batch);
  return batches;
}

describe("event ring", () => {
  test("batchBytes: a read hands out about that many bytes, the rest on the next reads, with nothing lost or lagged", async () => {
    const r = createEventRing<Ev>({ capacity: 100, maxBytes: 1000, sizeOf: () => 10, batchBytes: 25, lagged: (skipped) => ({ kind: "lag", skipped }) });
    r.append(values(1, 8));
    expect(await collect(r.subscribe({ follow: false }))).toEqual([recs(1, 3), recs(4, 6), recs(7, 8)]);
    expect(await collect(r.subscribe({ after: 6, follow: false }))).toEqual([recs(7, 8)]);
    // A follower: the backlog in batches, then live events.
    const it = r.subscribe({ follow: true })[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual(recs(1, 3));
    r.append(values(9, 9));
    expect((await it.next()).value).toEqual(recs(4, 6));
    expect((await it.next()).value).toEqual(recs(7, 9));
    await it.return?.();
    expect(() => createEventRing<Ev>({ capacity: 5, batchBytes: 10, lagged: (skipped) => ({ kind: "lag", skipped }) })).toThrow("needs sizeOf");
  });

  test("full and onEvict: the owner's own bound evicts oldest first, every event that leaves is reported once", () => {
    let held = 0;
    const left: number[] = [];
    const r = createEventRing<Ev>({
      capacity: 5,
      lagged: (skipped) => ({ kind: "lag", skipped }),
      full: () => held > 3,
      onEvict: (e) => {
        held--;
        if (e.kind === "v") left.push(e.v);
      },
    });
    for (let n = 1; n <= 4; n++) {
      held++; // the owner counts what it appends
      r.append([v(n)]);
    }
    expect(r.retained()).toEqual(recs(2, 4)); // 4 held > 3: the oldest went
    expect(left).toEqual([1]);
    for (let n = 5; n <= 9; n++) {
      held++;
      r.append([v(n)]);
    }
    expect(r.retained()).toEqual(recs(7, 9));
    expect(left).toEqual([1, 2, 3, 4, 5, 6]);
    expect(held).toBe(3);
    r.seed(recs(20, 21)); // replaced events leave too
    expect(left).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test("numbers events contiguously from 1 and keeps the last N", () => {
    const r = ring(3);
    expect(r.nextId).toBe(1);
    r.append(values(1, 2));
    r.append(values(3, 5));
    expect(r.nextId).toBe(6);
    expect(r.retained()).toEqual(recs(3, 5));
    r.append(values(6, 12)); // more than the capacity in one call
    expect(r.nextId).toBe(13);
    expect(r.retained()).toEqual(recs(10, 12));
  });

  test("a subscriber gets retained events, then live ones in batches", async () => {
    const r = ring(10);
    r.append(values(1, 2));
    const it = r.subscribe({ follow: true })[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: recs(1, 2) });
    r.append(values(3, 4));
    r.append(values(5, 5));
    expect(await it.next()).toEqual({ done: false, value: recs(3, 5) });
    const pending = it.next();
    r.append(values(6, 6));
    expect(await pending).toEqual({ done: false, value: recs(6, 6) });
    await it.return?.();
    expect(r.subscribers).toBe(0);
  });

  test("after=N resumes with events after N, from what is retained", async () => {
    const r = ring(5);
    r.append(values(1, 8)); // retains 4..8
    expect(await collect(r.subscribe({ after: 6, follow: false }))).toEqual([recs(7, 8)]);
    expect(await collect(r.subscribe({ after: 2, follow: false }))).toEqual([
      [{ id: 3, event: { kind: "lag", skipped: 1 } }, ...recs(4, 8)],
    ]);
    expect(await collect(r.subscribe({ after: 0, follow: false }))).toEqual([
      [{ id: 3, event: { kind: "lag", skipped: 3 } }, ...recs(4, 8)],
    ]);
    expect(await collect(r.subscribe({ after: 8, follow: false }))).toEqual([]);
    expect(r.subscribers).toBe(0);
  });

  test("a cursor past the head starts over: a lagged record, then everything retained, then live events", async () => {
    const lags: number[] = [];
    const r = ring(5, { onLagged: (n) => lags.push(n) });
    r.append(values(1, 8)); // retains 4..8
    // Not this ring's numbering: what is below the oldest retained is reported as skipped (as from 0).
    const it = r.subscribe({ after: 500, follow: true })[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: [{ id: 3, event: { kind: "lag", skipped: 3 } }, ...recs(4, 8)] });
    const pending = it.next();
    r.append(values(9, 9));
    expect(await pending).toEqual({ done: false, value: recs(9, 9) });
    await it.return?.();
    expect(r.subscribers).toBe(0);

    // Nothing gone: still one lagged record first (id 0, nothing skipped), so the client knows to re-sync.
    const whole = ring(10, { onLagged: (n) => lags.push(n) });
    whole.append(values(1, 3));
    expect(await collect(whole.subscribe({ after: 4, follow: false }))).toEqual([[{ id: 0, event: { kind: "lag", skipped: 0 } }, ...recs(1, 3)]]);
    // A ring that has numbered nothing yet, and one whose events are all gone.
    const empty = ring(10);
    const first = empty.subscribe({ after: 7, follow: true })[Symbol.asyncIterator]();
    expect(await first.next()).toEqual({ done: false, value: [{ id: 0, event: { kind: "lag", skipped: 0 } }] });
    const later = first.next();
    empty.append(values(1, 1));
    expect(await later).toEqual({ done: false, value: recs(1, 1) });
    await first.return?.();
    const gone = ring(10);
    gone.seed([]);
    gone.skipTo(6);
    expect(await collect(gone.subscribe({ after: 9, follow: false }))).toEqual([[{ id: 5, event: { kind: "lag", skipped: 5 } }]]);
    expect(lags).toEqual([3, 0]);
  });

  test("skipTo leaves a gap in the numbering; a marker after it is one lagged record for readers passing over it", async () => {
    const lags: number[] = [];
    const r = ring(10, { onLagged: (n) => lags.push(n), markers: true });
    r.append(values(1, 3));
    expect(() => r.skipTo(1.5)).toThrow(RangeError);
    r.skipTo(2); // never backwards
    expect(r.nextId).toBe(4);
    r.skipTo(100);
    expect(r.nextId).toBe(100);
    r.append([{ kind: "lag", skipped: 1 }]); // the marker, id 100
    r.append([v(101), v(102)]);
    const marker: Numbered<Ev> = { id: 100, event: { kind: "lag", skipped: 1 } };

    // Passing over the gap: the marker's id, every id passed over counted; not a slow reader's loss.
    expect(await collect(r.subscribe({ after: 2, follow: false }))).toEqual([
      [...recs(3, 3), { id: 100, event: { kind: "lag", skipped: 97 } }, ...recs(101, 102)],
    ]);
    expect(await collect(r.subscribe({ after: 50, follow: false }))).toEqual([
      [{ id: 100, event: { kind: "lag", skipped: 50 } }, ...recs(101, 102)],
    ]);
    // Just before the marker: the marker itself (it passes over one id); at or after it: nothing of it.
    expect(await collect(r.subscribe({ after: 99, follow: false }))).toEqual([[marker, ...recs(101, 102)]]);
    expect(await collect(r.subscribe({ after: 100, follow: false }))).toEqual([recs(101, 102)]);
    // Without a cursor: from the oldest retained, which shows the gap like any reader crossing it.
    expect(await collect(r.subscribe({ follow: false }))).toEqual([
      [...recs(1, 3), { id: 100, event: { kind: "lag", skipped: 97 } }, ...recs(101, 102)],
    ]);
    expect(lags).toEqual([]);

    // A marker that is the oldest retained record is skipped by a reader without a cursor...
    const seeded = ring(10, { onLagged: (n) => lags.push(n), markers: true });
    seeded.seed([marker, { id: 101, event: v(101) }]);
    expect(await collect(seeded.subscribe({ follow: false }))).toEqual([recs(101, 101)]);
    // ...and one past eviction gets one lagged record for both the evicted events and the gap.
    expect(await collect(seeded.subscribe({ after: 7, follow: false }))).toEqual([[{ id: 100, event: { kind: "lag", skipped: 93 } }, ...recs(101, 101)]]);
    // A cursor inside the gap that the ring has not numbered yet is not past the head.
    const open = ring(10, { markers: true });
    open.append(values(1, 2));
    open.skipTo(50);
    open.append([{ kind: "lag", skipped: 1 }]);
    const it = open.subscribe({ after: 30, follow: true })[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: [{ id: 50, event: { kind: "lag", skipped: 20 } }] });
    const pending = it.next();
    open.append(values(51, 51));
    expect(await pending).toEqual({ done: false, value: recs(51, 51) });
    await it.return?.();
    expect(lags).toEqual([]);
  });

  test("follow:false delivers what is retained at subscribe time and finishes", async () => {
    const r = ring(10);
    r.append(values(1, 3));
    const sub = r.subscribe({ follow: false });
    r.append(values(4, 4));
    expect(await collect(sub)).toEqual([recs(1, 3)]);
    expect(await collect(ring(10).subscribe({ follow: false }))).toEqual([]);
    expect(r.subscribers).toBe(0);
  });

  test("follow:false whose whole snapshot is evicted before its first read gets one exact lagged record, not an empty stream", async () => {
    const lagged: number[] = [];
    const r = ring(5, { onLagged: (n) => lagged.push(n) });
    r.append(values(1, 3));
    const sub = r.subscribe({ follow: false }); // the snapshot: ids 1..3
    r.append(values(4, 9)); // the ring now holds 5..9: 1..3 are gone before anything was read
    expect(await collect(sub)).toEqual([[{ id: 3, event: { kind: "lag", skipped: 3 } }]]);
    expect(lagged).toEqual([3]);
    // Part of the snapshot left: what is left, after a lagged record for the rest.
    r.append(values(10, 10));
    const part = r.subscribe({ follow: false, after: 5 }); // the snapshot: ids 6..10
    r.append(values(11, 12)); // evicts 6 and 7
    expect(await collect(part)).toEqual([[{ id: 7, event: { kind: "lag", skipped: 2 } }, ...recs(8, 10)]]);
  });

  test("end() lets followers drain to the head and finish; reopen() makes them wait again", async () => {
    const r = ring(10);
    r.append(values(1, 1));
    const done = collect(r.subscribe({ follow: true })); // takes [1] at once, then waits
    r.append(values(2, 3));
    r.end();
    expect(r.ended).toBe(true);
    expect(await done).toEqual([recs(1, 1), recs(2, 3)]);
    expect(r.subscribers).toBe(0);

    // Ended: a new follower drains and finishes too.
    expect(await collect(r.subscribe({ after: 2, follow: true }))).toEqual([recs(3, 3)]);

    r.reopen();
    expect(r.ended).toBe(false);
    const it = r.subscribe({ after: 3, follow: true })[Symbol.asyncIterator]();
    const pending = it.next();
    r.append(values(4, 5));
    expect(await pending).toEqual({ done: false, value: recs(4, 5) });
    const last = it.next();
    r.end();
    expect(await last).toEqual({ done: true, value: undefined });
    expect(r.subscribers).toBe(0);
  });

  test("a slow subscriber gets one exact lagged record; a fast one on the same ring gets everything", async () => {
    const lags: number[] = [];
    const r = ring(100, { onLagged: (n) => lags.push(n) });
    const slow = r.subscribe({ follow: true });
    const fast = r.subscribe({ follow: true })[Symbol.asyncIterator]();
    const got: Numbered<Ev>[] = [];
    for (let i = 0; i < 100; i++) {
      r.append(values(i * 50 + 1, i * 50 + 50));
      const res = await fast.next();
      if (res.done) throw new Error("fast subscription ended early");
      got.push(...res.value);
    }
    expect(got).toEqual(recs(1, 5000));
    expect(lags).toEqual([]);

    const it = slow[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({
      done: false,
      value: [{ id: 4900, event: { kind: "lag", skipped: 4900 } }, ...recs(4901, 5000)],
    });
    expect(lags).toEqual([4900]);
    slow.close();
    await fast.return?.();
    expect(r.subscribers).toBe(0);
  });

  test("one append wakes 1000 waiting subscribers with the same batch", async () => {
    const r = ring(10);
    const iters = Array.from({ length: 1000 }, () => r.subscribe({ follow: true })[Symbol.asyncIterator]());
    expect(r.subscribers).toBe(1000);
    const pending = iters.map((it) => it.next());
    r.append(values(1, 3));
    const results = await Promise.all(pending);
    expect(results).toEqual(Array.from({ length: 1000 }, () => ({ done: false, value: recs(1, 3) })));
    r.close();
    expect(await Promise.all(iters.map((it) => it.next()))).toEqual(
      Array.from({ length: 1000 }, () => ({ done: true, value: undefined })),
    );
    expect(r.subscribers).toBe(0);
  });

  test("close(): subscribers deliver what they have not read, then finish cut short (complete only when the ring had ended)", async () => {
    const open = ring(10);
    const ended = ring(10);
    const subs = [open, ended].map((r) => {
      const s = r.subscribe({ follow: true });
      return { s, it: s[Symbol.asyncIterator]() };
    });
    for (const r of [open, ended]) r.append(values(1, 2));
    for (const { it } of subs) expect(await it.next()).toEqual({ done: false, value: recs(1, 2) });
    // Appended, not yet read, then the ring shuts: the reader still gets it.
    for (const r of [open, ended]) r.append(values(3, 4));
    ended.end();
    open.close();
    ended.close();
    for (const { it } of subs) {
      expect(await it.next()).toEqual({ done: false, value: recs(3, 4) });
      expect(await it.next()).toEqual({ done: true, value: undefined });
    }
    expect(subs.map(({ s }) => s.complete)).toEqual([false, true]);
    expect([open.subscribers, ended.subscribers]).toEqual([0, 0]);
    // Ended alone (the task finished): complete; a read without follow is complete at its end.
    const r = ring(10);
    r.append(values(1, 1));
    const f = r.subscribe({ follow: true });
    r.end();
    expect(await collect(f)).toEqual([recs(1, 1)]);
    const once = r.subscribe({ follow: false });
    expect(await collect(once)).toEqual([recs(1, 1)]);
    expect([f.complete, once.complete]).toEqual([true, true]);
    // Closed by its reader: not complete.
    const mine = ring(10).subscribe({ follow: true });
    mine.close();
    expect(mine.complete).toBe(false);
  });

  test("exhausted: only an ended ring read up to its last event, and it says how the next read ends", async () => {
    const r = ring(3);
    r.append(values(1, 5)); // 1 and 2 evicted
    // Live: never exhausted, whatever the cursor or follow.
    expect([r.subscribe({ after: 5, follow: true }).exhausted, r.subscribe({ after: 5, follow: false }).exhausted]).toEqual([false, false]);
    r.end();
    const at = (after: number | undefined, follow = true) => r.subscribe(after === undefined ? { follow } : { after, follow });
    // Events left to deliver (or a lagged record for what was evicted, or a cursor of another numbering): not exhausted.
    expect([at(undefined).exhausted, at(4).exhausted, at(0).exhausted, at(1).exhausted, at(9).exhausted]).toEqual([false, false, false, false, false]);
    // At the last event, with or without follow: exhausted, and the next read ends the iteration, complete.
    for (const follow of [true, false]) {
      const s = at(5, follow);
      expect(s.exhausted).toBe(true);
      expect(await collect(s)).toEqual([]);
      expect(s.complete).toBe(true);
      expect(s.exhausted).toBe(false); // done: closed subscriptions are not
    }
    // Read to the end: exhausted once the last batch is out.
    const s = at(3);
    const it = s[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: recs(4, 5) });
    expect(s.exhausted).toBe(true);
    // Reopened (the task restarts): more will come, so no longer exhausted.
    r.reopen();
    expect(s.exhausted).toBe(false);
    s.close();
    // Closed by the reader or by the ring's shutdown: not exhausted either.
    const closed = at(5);
    closed.close();
    expect(closed.exhausted).toBe(false);
  });

  test("close, break and dispose detach subscribers", async () => {
    let idle = 0;
    const r = createEventRing<Ev>({ capacity: 10, lagged: (skipped) => ({ kind: "lag", skipped }), onIdle: () => idle++ });
    r.append(values(1, 2));

    // close() while a next() is pending resolves it as done.
    const a = r.subscribe({ follow: true });
    const ait = a[Symbol.asyncIterator]();
    await ait.next();
    const pending = ait.next();
    expect(r.subscribers).toBe(1);
    a.close();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(r.subscribers).toBe(0);

    // break out of for-await calls return().
    const seen: Numbered<Ev>[][] = [];
    for await (const batch of r.subscribe({ follow: true })) {
      seen.push(batch);
      break;
    }
    expect(seen).toEqual([recs(1, 2)]);
    expect(r.subscribers).toBe(0);

    // `using` disposes.
    {
      using b = r.subscribe({ follow: true });
      expect(b).toBeDefined();
      expect(r.subscribers).toBe(1);
    }
    expect(r.subscribers).toBe(0);
    expect(idle).toBe(3);

    // ring.close() ends every subscription; later ones finish at once and appends are ignored.
    const c = collect(r.subscribe({ follow: true }));
    const d = collect(r.subscribe({ after: 2, follow: true }));
    r.close();
    expect(await c).toEqual([recs(1, 2)]);
    expect(await d).toEqual([]);
    r.append(values(3, 3));
    expect(r.nextId).toBe(3);
    expect(await collect(r.subscribe({ follow: true }))).toEqual([]);
    expect(r.subscribers).toBe(0);
  });

  test("maxBytes evicts oldest first and keeps the newest", async () => {
    const r = ring(100, { maxBytes: 35 }); // 10 bytes each: 3 fit
    r.append(values(1, 5));
    expect(r.retained()).toEqual(recs(3, 5));
    expect(r.size).toBe(3);
    expect(await collect(r.subscribe({ after: 0, follow: false }))).toEqual([
      [{ id: 2, event: { kind: "lag", skipped: 2 } }, ...recs(3, 5)],
    ]);
    const tiny = ring(100, { maxBytes: 5 });
    tiny.append(values(1, 2));
    expect(tiny.retained()).toEqual(recs(2, 2));
  });

  test("seed restores records, ids continue after the last, gaps read as lagged", async () => {
    const r = ring(4);
    r.seed([
      { id: 3, event: v(3) },
      { id: 7, event: v(7) },
      { id: 8, event: v(8) },
    ]);
    expect(r.nextId).toBe(9);
    r.append([v(9)]);
    expect(r.retained()).toEqual([{ id: 3, event: v(3) }, ...recs(7, 9)]);
    expect(await collect(r.subscribe({ follow: false }))).toEqual([
      [{ id: 3, event: v(3) }, { id: 6, event: { kind: "lag", skipped: 3 } }, ...recs(7, 9)],
    ]);
    expect(() => r.seed([{ id: 2, event: v(2) }, { id: 2, event: v(2) }])).toThrow(RangeError);
  });
});
