import { describe, expect, test } from "bun:test";
import { formatTable, met, noisyBaseline, type BenchResult } from "../../bench/lib/report.ts";

describe("bench report: noisy rows", () => {
  test("a baseline whose rounds stay within 2x is judged", () => {
    expect(noisyBaseline([1855, 2077, 2131], "spawns/s")).toEqual({});
    expect(noisyBaseline([1000, 2000], "spawns/s")).toEqual({});
  });

  test("a baseline spread past 2x makes the row NOISY, not met, whatever its ratio", () => {
    const noisy = noisyBaseline([735, 887, 837, 1720, 2047], "spawns/s");
    expect(noisy.noisy).toBe("the baseline's rounds spread 2.8x (735 / 887 / 837 / 1,720 / 2,047 spawns/s; a quiet machine stays within 2x)");
    const row: BenchResult = { name: "1 throughput", ours: 898, baseline: 887, unit: "tasks/s", ratio: 1.01, target: ">= 0.6x", pass: true, ...noisy };
    expect(met(row)).toBe(false);
    expect(formatTable([row])).toContain("| NOISY  |");
  });

  test("met: passed and not noisy; info rows are never met", () => {
    const base: BenchResult = { name: "x", ours: 1, unit: "-", target: "-" };
    expect(met({ ...base, pass: true })).toBe(true);
    expect(met({ ...base, pass: false })).toBe(false);
    expect(met(base)).toBe(false);
  });
});
