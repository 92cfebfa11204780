/** The result rows every benchmark returns and the table `bench/run.ts` prints. */

export interface BenchResult {
  /** Benchmark number and short name, e.g. "1 throughput". */
  name: string;
  /** Our figure (median over rounds). */
  ours: number;
  /** The same-run baseline, when the benchmark has one. */
  baseline?: number;
  unit: string;
  /** ours / baseline (or baseline / ours when lower is better), when there is a baseline. */
  ratio?: number;
  /** The target in words, e.g. ">= 0.6x". */
  target: string;
  /** undefined: informational row, not judged. */
  pass?: boolean;
  /**
   * Set when the machine was too noisy during the rounds for the row to be
   * judged (e.g. the baseline's own rounds spread more than 2x): shown as
   * NOISY, counted as not met, with this reason in the summary. Rerun.
   */
  noisy?: string;
  /** Anything a reader needs to interpret the row (rounds, lagged counts, peers…). */
  note?: string;
}

/** Round to a few significant digits for display. */
export function fmt(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return "-";
  const a = Math.abs(n);
  if (a >= 1000) return Math.round(n).toLocaleString("en-US");
  if (a >= 100) return n.toFixed(0);
  if (a >= 10) return n.toFixed(1);
  if (a >= 1) return n.toFixed(2);
  return n.toFixed(3);
}

function verdict(r: BenchResult): string {
  return r.pass === undefined ? "info" : r.noisy !== undefined ? "NOISY" : r.pass ? "PASS" : "FAIL";
}

/** Whether a judged row met its target (a noisy row did not: it was not measured well enough to say). */
export function met(r: BenchResult): boolean {
  return r.pass === true && r.noisy === undefined;
}

/**
 * The baseline does the same work every round, so its rounds stay within
 * ≈ 1.9x of each other on this kind of shared VM; beyond 2x the machine was
 * too busy during the run for a ratio to it to mean anything (one run of
 * benchmark 1 read 735–2 047 spawns/s and "passed").
 */
export const MAX_BASELINE_SPREAD = 2;

/** `{ noisy }` for a judged row when the baseline's rounds (`values`, in `unit`) spread more than {@link MAX_BASELINE_SPREAD}. */
export function noisyBaseline(values: readonly number[], unit: string): Pick<BenchResult, "noisy"> {
  const spread = Math.max(...values) / Math.min(...values);
  if (!(spread > MAX_BASELINE_SPREAD)) return {};
  return { noisy: `the baseline's rounds spread ${spread.toFixed(1)}x (${values.map((x) => fmt(x)).join(" / ")} ${unit}; a quiet machine stays within ${MAX_BASELINE_SPREAD}x)` };
}

/** A Markdown table of results (readable in a terminal and pasteable into README). */
export function formatTable(results: readonly BenchResult[]): string {
  const header = ["benchmark", "ours", "baseline", "unit", "ratio", "target", "result", "note"];
  const rows = results.map((r) => [
    r.name,
    fmt(r.ours),
    fmt(r.baseline),
    r.unit,
    r.ratio === undefined ? "-" : `${r.ratio.toFixed(2)}x`,
    r.target,
    verdict(r),
    r.note ?? "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}
