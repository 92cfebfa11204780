/**
 * 4 — the line splitter alone (src/runner/line-splitter.ts), in-process, on
 * 64 KiB chunks (a pipe read) of 17-byte and of 200-byte lines.
 * Baseline, same run: the faster of two plain indexOf(10) splitters that
 * produce the same strings — (a) decode each line found by indexOf(10),
 * (b) find the last newline, decode the chunk once, split("\n") — and, for
 * the record, a scan that only finds the newlines (no strings at all).
 *
 * The measurement runs in a fresh Bun process: in `bun run bench` it follows
 * benchmark 3, whose consumers leave the harness a heap of millions of
 * strings and handles that slowed one side or the other from run to run
 * (17-byte lines: 0.73x after benchmark 3, 1.0–1.1x alone, same code).
 */
import { runStandalone, type BenchContext } from "./lib/bench-context.ts";
import type { BenchResult } from "./lib/report.ts";
import { median } from "./lib/stats.ts";
import { createLineSplitter } from "../src/runner/line-splitter.ts";

const CHUNK = 64 * 1024;
const TOTAL = 64 * 1024 * 1024; // bytes per measurement
const MAX_LINE = 16 * 1024;

/** Chunks of lines `lineBytes` long (newline included), cut at CHUNK regardless of line boundaries. */
function chunksOf(lineBytes: number): Uint8Array[] {
  const line = `${"abcdefghijklmnopqrstuvwxyz0123456789".repeat(Math.ceil(lineBytes / 36)).slice(0, lineBytes - 1)}\n`;
  const data = new TextEncoder().encode(line.repeat(Math.ceil((CHUNK * 16) / lineBytes)));
  const out: Uint8Array[] = [];
  for (let off = 0; off + CHUNK <= data.length; off += CHUNK) out.push(data.slice(off, off + CHUNK));
  return out;
}

type Splitter = { push(chunk: Uint8Array): string[] };

/** indexOf(10) per line, one decode per line, partial tail kept as bytes. */
function indexOfSplitter(): Splitter {
  const decoder = new TextDecoder();
  let tail: Uint8Array = new Uint8Array(0);
  return {
    push(chunk) {
      const out: string[] = [];
      let start = 0;
      let nl = chunk.indexOf(10);
      if (nl !== -1 && tail.length > 0) {
        const joined = new Uint8Array(tail.length + nl);
        joined.set(tail);
        joined.set(chunk.subarray(0, nl), tail.length);
        out.push(decoder.decode(joined));
        tail = new Uint8Array(0);
        start = nl + 1;
        nl = chunk.indexOf(10, start);
      }
      while (nl !== -1) {
        out.push(decoder.decode(chunk.subarray(start, nl)));
        start = nl + 1;
        nl = chunk.indexOf(10, start);
      }
      if (start < chunk.length) {
        const rest = chunk.subarray(start);
        const joined = new Uint8Array(tail.length + rest.length);
        joined.set(tail);
        joined.set(rest, tail.length);
        tail = joined;
      }
      return out;
    },
  };
}

/** indexOf(10) for the last newline, one decode per chunk, split("\n"): the fastest plain way (no CR, no line cap). */
function chunkDecodeSplitter(): Splitter {
  const decoder = new TextDecoder();
  let tail = "";
  return {
    push(chunk) {
      const last = chunk.lastIndexOf(10);
      if (last === -1) {
        tail += decoder.decode(chunk);
        return [];
      }
      const lines = (tail + decoder.decode(chunk.subarray(0, last))).split("\n");
      tail = decoder.decode(chunk.subarray(last + 1));
      return lines;
    },
  };
}

/** Only find the newlines: the floor under any splitter. */
function scanOnly(): Splitter {
  const none: string[] = [];
  return {
    push(chunk) {
      let n = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, nl + 1)) n++;
      return n < 0 ? [""] : none;
    },
  };
}

/** MB/s of `make()` over TOTAL bytes of `chunks` (repeated). */
function measure(make: () => Splitter, chunks: Uint8Array[]): number {
  Bun.gc(true); // no one pays for the garbage of the one measured before
  const s = make();
  let lines = 0;
  const rounds = Math.ceil(TOTAL / (chunks.length * CHUNK));
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) for (const c of chunks) lines += s.push(c).length;
  const ms = performance.now() - t0;
  if (lines < 0) console.log(lines);
  return (rounds * chunks.length * CHUNK) / 1e6 / (ms / 1000);
}

/** The measurement itself, in this process. */
async function measureAll(ctx: BenchContext): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const lineBytes of [17, 200]) {
    const chunks = chunksOf(lineBytes);
    // Warm the JIT for all three.
    measure(() => createLineSplitter(MAX_LINE), chunks);
    measure(indexOfSplitter, chunks);
    measure(chunkDecodeSplitter, chunks);
    measure(scanOnly, chunks);
    const ours: number[] = [];
    const perLine: number[] = [];
    const perChunk: number[] = [];
    const scan: number[] = [];
    for (let r = 0; r < Math.max(7, ctx.rounds); r++) {
      perLine.push(measure(indexOfSplitter, chunks));
      perChunk.push(measure(chunkDecodeSplitter, chunks));
      ours.push(measure(() => createLineSplitter(MAX_LINE), chunks));
      scan.push(measure(scanOnly, chunks));
    }
    const o = median(ours);
    const pl = median(perLine);
    const pc = median(perChunk);
    const b = Math.max(pl, pc);
    const s = median(scan);
    ctx.log(`4 splitter ${lineBytes} B lines: ours ${o.toFixed(0)} MB/s, decode per line ${pl.toFixed(0)}, decode per chunk ${pc.toFixed(0)}, scan only ${s.toFixed(0)} MB/s`);
    const linesPerS = (mbs: number) => ((mbs * 1e6) / lineBytes / 1e6).toFixed(1);
    results.push({
      name: `4 line splitter, ${lineBytes}-byte lines`,
      ours: o,
      baseline: b,
      unit: "MB/s",
      ratio: o / b,
      target: ">= 0.9x",
      pass: o / b >= 0.9,
      note: `${linesPerS(o)} M lines/s; baseline = best of decode-per-line ${pl.toFixed(0)} / decode-per-chunk ${pc.toFixed(0)} MB/s; scan without strings ${s.toFixed(0)} MB/s`,
    });
  }
  return results;
}

const CHILD_FLAG = "--measure";

/** Run the measurement in a fresh process (see the header) and return its rows. */
export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const child = Bun.spawn([process.execPath, import.meta.path, CHILD_FLAG, String(ctx.rounds)], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  for (const line of err.split("\n")) if (line !== "") ctx.log(line);
  if (code !== 0) throw new Error(`line splitter measurement exited ${code}: ${err.slice(-500)}`);
  return JSON.parse(out) as BenchResult[];
}

if (import.meta.main) {
  if (process.argv[2] === CHILD_FLAG) {
    const rounds = Number(process.argv[3]);
    const ctx: BenchContext = { bin: "", rounds, log: (m) => console.error(m) };
    console.log(JSON.stringify(await measureAll(ctx)));
  } else await runStandalone(run);
}
