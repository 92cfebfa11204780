/**
 * The stderr sink batches log lines (one write per event-loop turn, at once
 * past 64 KiB, in order), and the JSON logger renders the same lines whether a
 * record takes the plain or the guarded stringify path.
 */
import { describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, fd2Writer, stderrSink } from "../../src/observability/logger.ts";

const turn = () => new Promise<void>((r) => setImmediate(r));

describe("stderr sink", () => {
  test("lines of one turn go out in one write, in order, on the next turn", async () => {
    const writes: string[] = [];
    const sink = stderrSink({ write: (t: string) => writes.push(t) });
    sink("a\n");
    sink("b\n");
    sink("c\n");
    expect(writes).toEqual([]);
    await turn();
    expect(writes).toEqual(["a\nb\nc\n"]);
    sink("d\n");
    await turn();
    expect(writes).toEqual(["a\nb\nc\n", "d\n"]);
  });

  test("64 KiB pending are written at once, without waiting for the turn", () => {
    const writes: string[] = [];
    const sink = stderrSink({ write: (t: string) => writes.push(t) });
    const line = `${"x".repeat(1023)}\n`;
    for (let i = 0; i < 63; i++) sink(line);
    expect(writes).toEqual([]);
    sink(line);
    expect(writes.length).toBe(1);
    expect(writes[0]!.length).toBe(64 * 1024);
  });

  test("a failing stream never throws into the logger", async () => {
    const sink = stderrSink({
      write: () => {
        throw new Error("EPIPE");
      },
    });
    sink("lost\n");
    await turn();
  });
});

describe("JSON lines", () => {
  test("scalar fields and guarded fields (errors, bigints, cycles) both give one JSON object per line", () => {
    const lines: string[] = [];
    let now = Date.UTC(2026, 0, 1, 0, 0, 0, 5);
    const log = createLogger({ level: "debug", format: "json", write: (l) => lines.push(l), clock: () => now });
    log.info("plain", { a: 1, b: "x", c: true, d: null, e: undefined });
    const cyclic: Record<string, unknown> = { k: 1 };
    cyclic.self = cyclic;
    log.warn("guarded", { big: 10n, err: new Error("boom"), cyclic });
    now += 1;
    log.error("next ms");
    const parsed = lines.map((l) => {
      expect(l.endsWith("\n") && !l.slice(0, -1).includes("\n")).toBe(true);
      return JSON.parse(l);
    });
    expect(parsed[0]).toEqual({ ts: "2026-01-01T00:00:00.005Z", level: "info", msg: "plain", a: 1, b: "x", c: true, d: null });
    expect(parsed[1]).toMatchObject({ ts: "2026-01-01T00:00:00.005Z", level: "warn", msg: "guarded", big: "10", cyclic: { k: 1, self: "[circular]" } });
    expect(String(parsed[1].err)).toContain("Error: boom");
    expect(parsed[2]).toEqual({ ts: "2026-01-01T00:00:00.006Z", level: "error", msg: "next ms" });
  });
});

describe("JSON lines, byte for byte", () => {
  test("the line is JSON.stringify of { ts, level, msg, ...fields } for every shape of fields", () => {
    const now = Date.UTC(2026, 0, 1);
    const ts = new Date(now).toISOString();
    const cases: [string, Record<string, unknown> | undefined][] = [
      ['no fields, quotes " and \\ in the message', undefined],
      ["empty fields", {}],
      ["only undefined", { a: undefined }],
      ["scalars", { n: 1.5, s: 'x"y\n', t: false, z: null, u: undefined, i: -3 }],
      ["a field named like a fixed key overrides it", { msg: "mine", level: "custom" }],
      ["unicode ✓", { k: "é\u2028" }],
    ];
    for (const [msg, fields] of cases) {
      const lines: string[] = [];
      const log = createLogger({ level: "debug", format: "json", write: (l) => lines.push(l), clock: () => now });
      log.warn(msg, fields);
      expect(lines).toEqual([`${JSON.stringify({ ts, level: "warn", msg, ...fields })}\n`]);
    }
  });
});

describe("fd 2 writer", () => {
  test("writes the whole text to the descriptor, through partial writes", () => {
    const dir = mkdtempSync(join(tmpdir(), "tasklane-fd2-"));
    try {
      const path = join(dir, "err.log");
      const fd = openSync(path, "w");
      let calls = 0;
      // At most 3 bytes per call: the writer has to loop.
      const w = fd2Writer(fd, () => ({ write: () => { throw new Error("no fallback expected"); } }), (f, data, off) => {
        calls++;
        return writeSync(f, data, off, Math.min(3, data.length - off));
      });
      w.write("héllo\n");
      w.write("world\n");
      closeSync(fd);
      expect(readFileSync(path, "utf8")).toBe("héllo\nworld\n");
      expect(calls).toBe(5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("EAGAIN hands the rest, and every later text, to the fallback stream in order", () => {
    const direct: string[] = [];
    const queued: string[] = [];
    let full = false;
    const w = fd2Writer(
      2,
      () => ({ write: (d: string | Uint8Array) => queued.push(typeof d === "string" ? d : new TextDecoder().decode(d)) }),
      (_fd, data, off) => {
        if (full) throw Object.assign(new Error("EAGAIN: resource temporarily unavailable"), { code: "EAGAIN" });
        full = true; // the first call writes 4 bytes, then the descriptor is full
        direct.push(new TextDecoder().decode(data.subarray(off, off + 4)));
        return 4;
      },
    );
    w.write("abcdefgh\n");
    w.write("next\n");
    expect(direct).toEqual(["abcd"]);
    expect(queued).toEqual(["efgh\n", "next\n"]);
  });

  test("other write errors reach the sink, which drops the text without throwing", async () => {
    const w = fd2Writer(2, () => process.stderr, () => {
      throw Object.assign(new Error("EPIPE: broken pipe"), { code: "EPIPE" });
    });
    expect(() => w.write("x\n")).toThrow("EPIPE");
    const sink = stderrSink(w);
    sink("lost\n");
    await turn();
  });
});
