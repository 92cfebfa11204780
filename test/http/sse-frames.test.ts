/**
 * SSE frame text (src/http/sse.ts): while two or more streams of a renderer
 * are open, built once per record and shared by the streams that send it
 * while the record is recent, and not kept for records framed long ago (a
 * retained log of millions of lines must not be held twice); a stream alone
 * frames for itself and nothing is kept.
 */
import { describe, expect, test } from "bun:test";
import { FRAME_CACHE_GENERATION, FRAME_CACHE_GENERATION_CHARS, sseResponse, type SseFrame } from "../../src/http/sse.ts";
import type { Subscription } from "../../src/logs/subscription.ts";

interface Rec {
  id: number;
}

/** A subscription handing over `batches`, then ending. */
function fixed<T>(batches: T[][]): Subscription<T> {
  let closed = false;
  return {
    async *[Symbol.asyncIterator]() {
      for (const b of batches) {
        if (closed) return;
        yield b;
      }
    },
    close() {
      closed = true;
    },
    [Symbol.dispose]() {
      closed = true;
    },
  };
}

/** A renderer that counts the records it frames. */
function counting(pad = ""): { toFrame: (r: Rec) => SseFrame; calls: () => number } {
  let n = 0;
  return {
    toFrame: (r) => {
      n++;
      return { id: r.id, event: "rec", data: `{"id":${r.id}${pad}}` };
    },
    calls: () => n,
  };
}

const records = (from: number, n: number): Rec[] => Array.from({ length: n }, (_, i) => ({ id: from + i }));
const body = (recs: Rec[], toFrame: (r: Rec) => SseFrame) => sseResponse(fixed([recs]), toFrame).text();

/** A subscription that hands over nothing until it is closed. */
function idle<T>(): Subscription<T> {
  const closed = Promise.withResolvers<void>();
  return {
    async *[Symbol.asyncIterator]() {
      await closed.promise;
    },
    close() {
      closed.resolve();
    },
    [Symbol.dispose]() {
      closed.resolve();
    },
  };
}

/**
 * `n` more streams of the renderer, open (and sending nothing) until disposed.
 * With two of them, the streams a test runs one after another share frames:
 * there are never fewer than two open.
 */
function peers(toFrame: (r: Rec) => SseFrame, n = 2): AsyncDisposable {
  const readers = Array.from({ length: n }, () => (sseResponse(idle<Rec>(), toFrame).body as ReadableStream<Uint8Array>).getReader());
  return { [Symbol.asyncDispose]: async () => void (await Promise.all(readers.map((r) => r.cancel()))) };
}

describe("SSE frame cache", () => {
  test("streams sending the same recent records frame each once, and send identical frames", async () => {
    const r = counting();
    const recs = records(1, 500);
    const [a, b, c] = await Promise.all([body(recs, r.toFrame), body(recs, r.toFrame), body(recs, r.toFrame)]);
    expect(r.calls()).toBe(500);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(a).toContain("id: 500\nevent: rec\ndata: {\"id\":500}\n\n");
  });

  test("a stream alone frames every record itself: nothing is kept for the next one", async () => {
    const r = counting();
    const recs = records(1, 300);
    const a = await body(recs, r.toFrame);
    expect(await body(recs, r.toFrame)).toBe(a);
    expect(r.calls()).toBe(600);
  });

  test("streams opened one after another share frames while two others stay open; down to one, the frames are let go", async () => {
    const r = counting();
    const recs = records(1, 300);
    {
      await using _ = peers(r.toFrame);
      const a = await body(recs, r.toFrame);
      expect(await body(recs, r.toFrame)).toBe(a);
      expect(r.calls()).toBe(300);
    }
    await using _ = peers(r.toFrame);
    await body(recs, r.toFrame);
    expect(r.calls()).toBe(600);
  });

  test("a record framed more than two generations of records ago is framed again, with the same text", async () => {
    const r = counting();
    await using _ = peers(r.toFrame);
    const first = records(1, 10);
    const before = await body(first, r.toFrame);
    // Push the first records out: two full generations of newer ones.
    await body(records(100, 2 * FRAME_CACHE_GENERATION), r.toFrame);
    const framed = r.calls();
    expect(await body(first, r.toFrame)).toBe(before);
    expect(r.calls()).toBe(framed + first.length);
  });

  test("big frames (watch events carry whole tasks) are cached by size too: a few MiB of them push older ones out", async () => {
    const big = counting(`,"pad":"${"p".repeat(FRAME_CACHE_GENERATION_CHARS / 8)}"`); // an eighth of a generation a frame
    await using _ = peers(big.toFrame);
    const first = records(1, 1);
    await body(first, big.toFrame);
    await body(first, big.toFrame);
    expect(big.calls()).toBe(1); // kept while it is recent
    await body(records(2, 16), big.toFrame); // two generations by size, far below the count
    const framed = big.calls();
    await body(first, big.toFrame);
    expect(big.calls()).toBe(framed + 1);
  });

  test("a frame bigger than a quarter of a generation is not cached", async () => {
    const huge = counting(`,"pad":"${"h".repeat(FRAME_CACHE_GENERATION_CHARS / 2)}"`);
    const one = records(1, 1);
    const [a, b] = await Promise.all([body(one, huge.toFrame), body(one, huge.toFrame)]);
    expect(b).toBe(a);
    expect(huge.calls()).toBe(2);
  });
});
