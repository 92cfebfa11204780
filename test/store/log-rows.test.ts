/**
 * The stored text of log rows (src/store/log-rows.ts): chunk runs are packed,
 * everything reads back exactly as it was written, rows written before the
 * packing read as they are, and a row that is not one is refused.
 */
import { describe, expect, test } from "bun:test";
import { decodeLogRow, encodeLogRow } from "../../src/store/log-rows.ts";
import type { LogEvent } from "../../src/tasks/model.ts";

const LINE = "x".repeat(99);

function chunk(seq: number, ts: number, line = `line ${seq}`, stream: "stdout" | "stderr" = "stdout", attempt = 1): LogEvent {
  return { type: "chunk", attempt, stream, seq, ts, line };
}

/** What decoding gives, compared with what was encoded, key order included (the SSE and REST bodies are made from it). */
function roundTrip(events: LogEvent[]): LogEvent[] {
  const back = decodeLogRow(encodeLogRow(events));
  expect(JSON.stringify(back)).toBe(JSON.stringify(events));
  return back;
}

describe("log rows", () => {
  test("a run of lines of one attempt and stream is packed: a 99-character line takes 102 bytes, not its event's JSON", () => {
    const events = Array.from({ length: 1000 }, (_, i) => chunk(i, 1_712_750_400_123 + Math.floor(i / 400), LINE));
    const body = encodeLogRow(events);
    expect(JSON.parse(body)).toEqual([[1, "stdout", 0, [1_712_750_400_123, 400, 1, 400, 1, 200], events.map(() => LINE)]]);
    expect(body.length).toBeLessThan(1000 * 102 + 100);
    expect(JSON.stringify(events).length).toBeGreaterThan(1000 * 180);
    roundTrip(events);
  });

  test("markers, both streams interleaved, a gap in seq, a new attempt and equal or falling times read back exactly", () => {
    roundTrip([
      { type: "runStarted", attempt: 1, startedAt: 100 },
      chunk(0, 100),
      chunk(1, 100),
      chunk(0, 101, "err 0", "stderr"),
      chunk(2, 101),
      chunk(3, 99), // the clock stepped back
      chunk(5, 99), // a seq gap starts a new run
      chunk(6, 1_000_000),
      { type: "runFinished", attempt: 1, exitCode: 1, finishedAt: 1_000_001 },
      { type: "runFinished", attempt: 1, finishedAt: 1_000_001 },
      { type: "runStarted", attempt: 2, startedAt: 1_000_002 },
      chunk(7, 1_000_002, "same seq chain, new attempt", "stdout", 2),
      chunk(8, 1_000_002, "", "stdout", 2),
    ]);
  });

  test("any text survives: quotes, backslashes, newlines, control characters, non-ASCII, lone surrogates, empty lines", () => {
    const lines = ['say "hi"', "C:\\path\\", "a\nb", "\r\n", "\u0000\u001b[31m", "héllo ✓ 𝄞", "\ud800 lone", "", " "];
    roundTrip(lines.map((line, i) => chunk(i, 5, line)));
  });

  test("numbers that are not safe integers are kept in their event (times and seqs add back exactly)", () => {
    const odd = [chunk(0, 1.5), chunk(1, 2 ** 60), chunk(2 ** 53, 7), chunk(3, 7, "x", "stdout", 0.5), chunk(4, 7), chunk(5, 7)];
    const body = encodeLogRow(odd);
    expect((JSON.parse(body) as unknown[]).filter((item) => !Array.isArray(item))).toHaveLength(4);
    roundTrip(odd);
  });

  test("rows written before the packing (arrays of events) read as they are", () => {
    const old = [{ type: "runStarted", attempt: 1, startedAt: 1 }, chunk(0, 2), chunk(1, 2), { type: "lagged", skipped: 3 }];
    expect(decodeLogRow(JSON.stringify(old))).toEqual(old as LogEvent[]);
    expect(decodeLogRow("[]")).toEqual([]);
    expect(encodeLogRow([])).toBe("[]");
  });

  test("random sequences read back exactly (deterministic generator)", () => {
    let x = 12345;
    const r = (n: number) => {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      return x % n;
    };
    for (let round = 0; round < 200; round++) {
      const events: LogEvent[] = [];
      const seq = { stdout: r(5), stderr: r(5) };
      let ts = 1_700_000_000_000 + r(1000);
      let attempt = 1 + r(3);
      for (let i = r(300); i > 0; i--) {
        const k = r(100);
        if (k < 3) events.push({ type: "runStarted", attempt: ++attempt, startedAt: ts });
        else if (k < 5) events.push({ type: "runFinished", attempt, exitCode: r(3), finishedAt: ts });
        else {
          const stream = r(4) === 0 ? "stderr" : "stdout";
          seq[stream] += r(10) === 0 ? 2 : 1;
          ts += r(3) === 0 ? r(2000) - 5 : 0;
          events.push(chunk(seq[stream], ts, "l".repeat(r(20)), stream, attempt));
        }
      }
      roundTrip(events);
    }
  });

  test("a row that is not one is refused, not read as something else", () => {
    expect(() => decodeLogRow('{"type":"chunk"}')).toThrow("stored log row is not a JSON array");
    expect(() => decodeLogRow('[[1,"stdout",0,[5,3],["a","b"]]]')).toThrow("stored log row counts 3 lines but holds 2");
    expect(() => decodeLogRow("[")).toThrow();
  });
});
