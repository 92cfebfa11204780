/**
 * Server-Sent Events from a `Subscription`: one write per batch, keep-alive
 * comments while idle, pull-driven so a slow client applies backpressure to
 * its own cursor only (it then gets `lagged`, never slows anyone else).
 *
 * Fan-out cost stays off the task's back: a record's frame text is built once
 * and shared by every stream that sends it (records are shared, read-only),
 * and all streams together frame at most {@link FANOUT_BUDGET_BYTES} per
 * turn of the event loop; a stream over budget waits for the next turn, so
 * reading the tasks' pipes is never starved by a thousand subscribers (a
 * stream that waits too long gets `lagged`, as any slow client does).
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

/** Frame text per record, per renderer: built once, reused by every subscriber that sends the record. */
const frameCache = new WeakMap<(item: never) => SseFrame, WeakMap<object, string>>();

function framesOf<T>(items: readonly T[], toFrame: (item: T) => SseFrame): string {
  let cache = frameCache.get(toFrame);
  if (cache === undefined) {
    cache = new WeakMap();
    frameCache.set(toFrame, cache);
  }
  let text = "";
  for (const item of items) {
    if (typeof item !== "object" || item === null) {
      text += frame(toFrame(item));
      continue;
    }
    let f = cache.get(item);
    if (f === undefined) {
      f = frame(toFrame(item));
      cache.set(item, f);
    }
    text += f;
  }
  return text;
}

/**
 * Bytes all SSE streams together may frame per turn of the event loop: about
 * one pipe read (64 KiB), so fan-out never outweighs reading a task's output.
 * Measured with 1000 subscribers on a chatty task (bench 7): the task ran
 * ≈ 1.2x slower with 64 KiB, ≈ 1.9x with 256 KiB, ≈ 9x with 4 MiB, ≈ 20x unbounded.
 */
export const FANOUT_BUDGET_BYTES = 64 * 1024;
let turnBytes = 0;
let turnTimer: ReturnType<typeof setTimeout> | undefined;
/** Streams waiting for room, first come first served; `head` indexes the first live entry. */
let waiting: { estimate: number; resolve: () => void }[] = [];
let head = 0;

/** Ends the turn on the next timer tick, i.e. after the loop has polled I/O again. */
function scheduleTurn(): void {
  turnTimer ??= setTimeout(nextTurn, 0);
}

function nextTurn(): void {
  turnTimer = undefined;
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
  if (turnBytes > 0) scheduleTurn();
}

/**
 * Reserve about `estimate` bytes of this turn's budget: at once (undefined)
 * when there is room and nobody is waiting, else a promise resolved in the
 * first turn with room. A turn always admits its first stream, however big.
 */
function admit(estimate: number): Promise<void> | undefined {
  scheduleTurn();
  if (head === waiting.length && (turnBytes === 0 || turnBytes + estimate <= FANOUT_BUDGET_BYTES)) {
    turnBytes += estimate;
    return undefined;
  }
  return new Promise<void>((resolve) => waiting.push({ estimate, resolve }));
}

/** Build a `text/event-stream` response that drains `sub` through `toFrame`. */
export function sseResponse<T>(
  sub: Subscription<T>,
  toFrame: (item: T) => SseFrame,
  opts: { keepAliveMs?: number; headers?: Record<string, string>; onClose?: () => void } = {},
): Response {
  const it = sub[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T[]>> | undefined;
  let closed = false;
  /** Bytes this stream expects its next batch to take (its last one), reserved from the turn's budget. */
  let estimate = 4096;
  const keepAliveMs = opts.keepAliveMs ?? KEEPALIVE_MS;
  const finish = () => {
    if (closed) return;
    closed = true;
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
        const bytes = encoder.encode(framesOf(r.value, toFrame));
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
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...opts.headers,
    },
  });
}
