/**
 * Server-Sent Events from a `Subscription`: one write per batch, keep-alive
 * comments while idle, pull-driven so a slow client applies backpressure to
 * its own cursor only (it then gets `lagged`, never slows anyone else).
 *
 * Fan-out cost stays off the task's back: while two or more streams of a
 * kind (logs, events) are open, a recent record's frame text is built once
 * and shared by every stream that sends it (records are shared, read-only;
 * see FRAME_CACHE_GENERATION),
 * and all streams together frame at most {@link FANOUT_BUDGET_BYTES} per
 * turn of the event loop; a stream over budget waits, first come first
 * served, for a later turn ({@link FANOUT_TURN_MS} on), so reading the
 * tasks' pipes is never starved by a thousand subscribers (a stream that
 * waits too long gets `lagged`, as any slow client does).
 */
import type { Subscription } from "../logs/subscription.ts";

/** How one record becomes an SSE frame. */
export interface SseFrame {
  id?: number;
  event: string;
  data: string;
}

/** Keep-alive period of idle streams (CONTRACT §3: 15 s). */
export const KEEPALIVE_MS = 15_000;

const encoder = new TextEncoder();

function frame(f: SseFrame): string {
  return `${f.id !== undefined ? `id: ${f.id}\n` : ""}event: ${f.event}\ndata: ${f.data}\n\n`;
}

/**
 * Records framed per cache generation. Frame text is cached for the records
 * framed most recently — between FRAME_CACHE_GENERATION and twice as many —
 * which covers every subscriber of a ring at the default retention (1000):
 * subscribers further apart than that are lagged or re-frame. Caching every
 * record for as long as it lives (a WeakMap keyed by record) kept a second
 * copy of a whole retained log in memory: with `--log-retain 2000000`, 1 M
 * lines to one SSE subscriber cost 4.7–6.5 µs of agent CPU per line, most of
 * it the collector tracing those strings, against 2.0–2.5 µs uncached
 * (bench/README.md, benchmark 3).
 */
export const FRAME_CACHE_GENERATION = 8192;
/**
 * And at most this many characters of frame text per generation: watch
 * frames carry whole tasks (a spec may take 4 MiB), so a count alone would
 * let the cache hold gigabytes. A frame larger than a quarter of it is not
 * cached at all.
 */
export const FRAME_CACHE_GENERATION_CHARS = 4 * 1024 * 1024;

/** Frame text of recently framed records, per renderer: the current and the previous generation. */
interface FrameCache {
  current: Map<object, string>;
  previous: Map<object, string>;
  /** Characters of frame text in `current`. */
  chars: number;
  /**
   * Streams of this renderer open now. The cache is used only while there
   * are two or more: a stream alone would pay for the lookups and the
   * insertions with nothing to share them with (with one SSE and one gRPC
   * subscriber on a chatty task, 412–467 k lines/s cached against 474–530 k
   * not; bench/README.md, benchmark 3).
   */
  streams: number;
}
const frameCaches = new WeakMap<(item: never) => SseFrame, FrameCache>();

function cacheOf<T>(toFrame: (item: T) => SseFrame): FrameCache {
  let cache = frameCaches.get(toFrame);
  if (cache === undefined) {
    cache = { current: new Map(), previous: new Map(), chars: 0, streams: 0 };
    frameCaches.set(toFrame, cache);
  }
  return cache;
}

function framesOf<T>(items: readonly T[], toFrame: (item: T) => SseFrame, cache: FrameCache): string {
  let text = "";
  if (cache.streams < 2) {
    for (const item of items) text += frame(toFrame(item));
    return text;
  }
  for (const item of items) {
    if (typeof item !== "object" || item === null) {
      text += frame(toFrame(item));
      continue;
    }
    let f = cache.current.get(item) ?? cache.previous.get(item);
    if (f === undefined) {
      f = frame(toFrame(item));
      if (f.length <= FRAME_CACHE_GENERATION_CHARS / 4) {
        if (cache.current.size >= FRAME_CACHE_GENERATION || cache.chars + f.length > FRAME_CACHE_GENERATION_CHARS) {
          cache.previous = cache.current;
          cache.current = new Map();
          cache.chars = 0;
        }
        cache.current.set(item, f);
        cache.chars += f.length;
      }
    }
    text += f;
  }
  return text;
}

/**
 * Bytes all SSE streams together may frame per turn of the event loop (a
 * turn always admits its first stream, whatever its size, so one fast
 * subscriber still gets everything, in fewer and bigger batches). Small, so
 * that fan-out never outweighs reading the tasks' pipes. Measured with 1000
 * subscribers on a chatty task (bench 7, turns back to back), task run time
 * vs. no subscriber: 8–16 KiB ≈ 1.1–1.4x, 32 KiB ≈ 1.8x, 64 KiB ≈ 1.2–2x,
 * 4 MiB ≈ 9x, unbounded ≈ 20x.
 */
export const FANOUT_BUDGET_BYTES = 16 * 1024;
let turnBytes = 0;
let turnTimer: ReturnType<typeof setTimeout> | undefined;
/** Streams waiting for room, first come first served; `head` indexes the first live entry. */
let waiting: { estimate: number; resolve: () => void }[] = [];
let head = 0;

/**
 * While several streams wait for room, turns start this far apart: the
 * fan-out then leaves the CPU to the tasks (a waiting stream's next batch is
 * just bigger, or `lagged`); so contended fan-out gets 16 KiB, or one batch,
 * per 5 ms. Measured with 1000 subscribers on a task printing 100 000 lines
 * (bench 7), its run time vs. no subscriber: turns back to back ≈ 2x+,
 * 2 ms apart ≈ 1.5–2x, 5 ms ≈ 0.9–1.15x, 20 ms ≈ 0.8–1.1x.
 */
export const FANOUT_TURN_MS = 5;
let turnDelay = 0;

/** End the turn on a timer (after the loop has polled I/O again), at the latest `delay` ms from now. */
function scheduleTurn(delay: number): void {
  if (turnTimer !== undefined) {
    if (delay <= turnDelay) return;
    clearTimeout(turnTimer);
  }
  turnDelay = delay;
  turnTimer = setTimeout(nextTurn, delay);
}

function nextTurn(): void {
  turnTimer = undefined;
  turnDelay = 0;
  turnBytes = 0;
  while (head < waiting.length) {
    const w = waiting[head] as { estimate: number; resolve: () => void };
    if (turnBytes > 0 && turnBytes + w.estimate > FANOUT_BUDGET_BYTES) break;
    head++;
    turnBytes += w.estimate;
    w.resolve();
  }
  if (head === waiting.length) {
    waiting = [];
    head = 0;
  }
  if (head < waiting.length) scheduleTurn(FANOUT_TURN_MS);
  else if (turnBytes > 0) scheduleTurn(0);
}

/**
 * Reserve about `estimate` bytes of this turn's budget: at once (undefined)
 * when there is room and nobody is waiting, else a promise resolved in the
 * first turn with room. A turn always admits its first stream, however big.
 */
function admit(estimate: number): Promise<void> | undefined {
  if (head === waiting.length && (turnBytes === 0 || turnBytes + estimate <= FANOUT_BUDGET_BYTES)) {
    turnBytes += estimate;
    scheduleTurn(0);
    return undefined;
  }
  const room = new Promise<void>((resolve) => waiting.push({ estimate, resolve }));
  // A stream waiting alone only waits for the loop to come round; several contend: space the turns.
  scheduleTurn(waiting.length - head > 1 ? FANOUT_TURN_MS : 0);
  return room;
}

/** Build a `text/event-stream` response that drains `sub` through `toFrame`. */
export function sseResponse<T>(
  sub: Subscription<T>,
  toFrame: (item: T) => SseFrame,
  opts: { keepAliveMs?: number; headers?: Record<string, string>; onClose?: () => void; head?: boolean } = {},
): Response {
  const headers = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
    ...opts.headers,
  };
  if (opts.head) {
    // A HEAD request gets the stream's headers and no body: a body would never be read or
    // cancelled, and its subscription would stay open after the client left.
    sub.close();
    opts.onClose?.();
    return new Response(null, { headers });
  }
  const cache = cacheOf(toFrame);
  cache.streams++;
  const it = sub[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T[]>> | undefined;
  let closed = false;
  /** Bytes this stream expects its next batch to take (its last one), reserved from the turn's budget. */
  let estimate = 4096;
  const keepAliveMs = opts.keepAliveMs ?? KEEPALIVE_MS;
  const finish = () => {
    if (closed) return;
    closed = true;
    if (--cache.streams < 2) {
      // Nothing left to share: let the frames go.
      cache.current = new Map();
      cache.previous = new Map();
      cache.chars = 0;
    }
    sub.close();
    opts.onClose?.();
  };
  const body = new ReadableStream<Uint8Array>(
    {
      start(ctrl) {
        ctrl.enqueue(encoder.encode(": stream open\n\n"));
      },
      async pull(ctrl) {
        pending ??= it.next();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const tick = new Promise<"tick">((r) => (timer = setTimeout(() => r("tick"), keepAliveMs)));
        const r = await Promise.race([pending, tick]);
        clearTimeout(timer);
        if (r === "tick") {
          ctrl.enqueue(encoder.encode(": keep-alive\n\n"));
          return;
        }
        pending = undefined;
        if (r.done) {
          finish();
          ctrl.close();
          return;
        }
        const room = admit(estimate);
        if (room !== undefined) await room;
        const bytes = encoder.encode(framesOf(r.value, toFrame, cache));
        turnBytes += bytes.length - estimate; // still the same turn: the reservation becomes the actual size
        estimate = Math.min(Math.max(bytes.length, 1024), FANOUT_BUDGET_BYTES);
        ctrl.enqueue(bytes);
      },
      cancel() {
        finish();
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { headers });
}
