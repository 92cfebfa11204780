import type { StreamKind } from "../../src/tasks/model.ts";
import type { RunResult } from "../../src/runner/run-process.ts";

/** Collects a run's lines per stream and lets a test wait for a given line (never for time). */
export interface LineCollector {
  readonly lines: Record<StreamKind, string[]>;
  /** Every onLines call: the stream and how many lines it carried. */
  readonly calls: { stream: StreamKind; count: number }[];
  readonly timestamps: number[];
  /** Bytes read per stream, summed over the onLines calls. */
  readonly bytes: Record<StreamKind, number>;
  onLines(stream: StreamKind, lines: string[], ts: number, bytes: number): void;
  /** Resolves with the first line of `stream` matching `re`; rejects if `result` settles first without one. */
  waitFor(stream: StreamKind, re: RegExp, result: Promise<RunResult>): Promise<string>;
}

export function createLineCollector(): LineCollector {
  const lines: Record<StreamKind, string[]> = { stdout: [], stderr: [] };
  const calls: { stream: StreamKind; count: number }[] = [];
  const timestamps: number[] = [];
  const bytes: Record<StreamKind, number> = { stdout: 0, stderr: 0 };
  let wake: () => void = () => {};
  let changed = new Promise<void>((r) => (wake = r));
  return {
    lines,
    calls,
    timestamps,
    bytes,
    onLines(stream, batch, ts, n) {
      calls.push({ stream, count: batch.length });
      bytes[stream] += n;
      timestamps.push(ts);
      lines[stream].push(...batch);
      const w = wake;
      changed = new Promise<void>((r) => (wake = r));
      w();
    },
    async waitFor(stream, re, result) {
      let ended = false;
      void result.then(() => {
        ended = true;
        wake();
      });
      for (;;) {
        const hit = lines[stream].find((l) => re.test(l));
        if (hit !== undefined) return hit;
        if (ended) throw new Error(`run ended without a ${stream} line matching ${re}: ${JSON.stringify(lines)}`);
        await changed;
      }
    },
  };
}
