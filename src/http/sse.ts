/**
 * Server-Sent Events from a `Subscription`: one write per batch, keep-alive
 * comments while idle, pull-driven so a slow client applies backpressure to
 * its own cursor only (it then gets `lagged`, never slows anyone else).
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

/** Build a `text/event-stream` response that drains `sub` through `toFrame`. */
export function sseResponse<T>(
  sub: Subscription<T>,
  toFrame: (item: T) => SseFrame,
  opts: { keepAliveMs?: number; headers?: Record<string, string>; onClose?: () => void } = {},
): Response {
  const it = sub[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T[]>> | undefined;
  let closed = false;
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
        let text = "";
        for (const item of r.value) text += frame(toFrame(item));
        ctrl.enqueue(encoder.encode(text));
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
