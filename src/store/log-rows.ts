/**
 * The text of a stored log row (`log_batches.body`): a JSON array whose items
 * are log events in order. An item is either an event as it is (any type), or
 * a run of `chunk` events of one attempt and stream with consecutive `seq`s,
 * packed as an array:
 *
 *     [attempt, stream, firstSeq, times, lines]
 *
 * - `times` is `[ts0, n0, d1, n1, d2, n2, …]`: `n0` lines at `ts0`, then `n1`
 *   lines at `ts0 + d1`, then `n2` at `ts0 + d1 + d2`, …;
 * - `lines` holds the lines' text, one string each.
 *
 * A chunk line then costs its text and 3 bytes (quotes and comma) instead of
 * its event's JSON, ≈ 87 bytes more for a 99-character line: a chatty task's
 * output takes about half the bytes in the database, its write-ahead log and
 * the checkpoint (bench/README.md, benchmark 3). Rows written before this
 * format (arrays of events only) are read by the same code.
 */
import type { LogEvent, StreamKind } from "../tasks/model.ts";

/** A packed run of chunk events: `[attempt, stream, firstSeq, times, lines]`. */
type PackedChunks = [attempt: number, stream: StreamKind, firstSeq: number, times: number[], lines: string[]];

/**
 * Only integer numbers are packed (every chunk the log hub makes): the
 * differences of `ts` then add back exactly. Anything else is kept as it is.
 */
function packable(ev: LogEvent & { type: "chunk" }): boolean {
  return Number.isSafeInteger(ev.ts) && Number.isSafeInteger(ev.seq) && Number.isSafeInteger(ev.attempt);
}

/** The stored text of `events` (one row's, in id order). */
export function encodeLogRow(events: readonly LogEvent[]): string {
  const items: (LogEvent | PackedChunks)[] = [];
  let run: PackedChunks | undefined;
  let lastSeq = 0;
  let lastTs = 0;
  for (const ev of events) {
    if (ev.type !== "chunk" || !packable(ev)) {
      items.push(ev);
      run = undefined;
      continue;
    }
    if (run !== undefined && run[0] === ev.attempt && run[1] === ev.stream && ev.seq === lastSeq + 1) {
      const times = run[3];
      if (ev.ts === lastTs) (times[times.length - 1] as number)++;
      else times.push(ev.ts - lastTs, 1);
      run[4].push(ev.line);
    } else {
      run = [ev.attempt, ev.stream, ev.seq, [ev.ts, 1], [ev.line]];
      items.push(run);
    }
    lastSeq = ev.seq;
    lastTs = ev.ts;
  }
  return JSON.stringify(items);
}

/** The events of a stored row, in order (either format). Throws on a row that is not one. */
export function decodeLogRow(body: string): LogEvent[] {
  const items = JSON.parse(body) as unknown;
  if (!Array.isArray(items)) throw new Error("stored log row is not a JSON array");
  const events: LogEvent[] = [];
  for (const item of items as (LogEvent | PackedChunks)[]) {
    if (!Array.isArray(item)) {
      events.push(item);
      continue;
    }
    const [attempt, stream, firstSeq, times, lines] = item;
    let i = 0;
    let ts = 0;
    for (let t = 0; t < times.length; t += 2) {
      ts = t === 0 ? (times[0] as number) : ts + (times[t] as number);
      const n = times[t + 1] as number;
      for (let k = 0; k < n; k++, i++) {
        events.push({ type: "chunk", attempt, stream, seq: firstSeq + i, ts, line: lines[i] as string });
      }
    }
    if (i !== lines.length) throw new Error(`stored log row counts ${i} lines but holds ${lines.length}`);
  }
  return events;
}
