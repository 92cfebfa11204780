import { describe, expect, test } from "bun:test";
import { backoffDelay, remainingDelay } from "../../src/tasks/backoff.ts";
import { JITTERS, type Backoff, type Jitter } from "../../src/tasks/model.ts";
import { mulberry32 } from "../helpers/seeded-random.ts";

const policy = (jitter: Jitter, firstMs = 1000, maxMs = 30000, factor = 2): Backoff => ({ jitter, firstMs, maxMs, factor });
const pinned = (r: number) => () => r;
const ALMOST_ONE = 0.9999999;

/** The interval CONTRACT §6 allows for a mode, computed independently of the implementation. */
function allowed(p: Backoff, n: number): { low: number; high: number } {
  const base = Math.min(p.firstMs * p.factor ** n, p.maxMs);
  switch (p.jitter) {
    case "none":
      return { low: base, high: base };
    case "full":
      return { low: 0, high: base };
    case "equal":
      return { low: base / 2, high: base };
    case "decorrelated":
      return { low: Math.min(p.firstMs, p.maxMs), high: Math.min(3 * base, p.maxMs) };
  }
}

describe("backoffDelay bounds", () => {
  for (const jitter of JITTERS) {
    for (const n of [0, 1, 3, 4, 5, 10, 60]) {
      test(`${jitter}, n=${n}: 10 000 draws stay within the contract interval`, () => {
        const p = policy(jitter);
        const { low, high } = allowed(p, n);
        const random = mulberry32(n * 31 + jitter.length);
        let min = Number.POSITIVE_INFINITY;
        let max = Number.NEGATIVE_INFINITY;
        let nonInteger = 0;
        for (let i = 0; i < 10_000; i += 1) {
          const d = backoffDelay(p, n, random);
          if (!Number.isInteger(d)) nonInteger += 1;
          min = Math.min(min, d);
          max = Math.max(max, d);
        }
        expect({ nonInteger, minOk: min >= Math.round(low), maxOk: max <= Math.round(high) }).toEqual({
          nonInteger: 0,
          minOk: true,
          maxOk: true,
        });
        // The draws spread over the interval (not stuck at one end).
        const width = high - low;
        expect({ nearLow: min - low <= width * 0.01, nearHigh: high - max <= width * 0.01 }).toEqual({
          nearLow: true,
          nearHigh: true,
        });
      });
    }
  }
});

describe("backoffDelay exact values with a pinned random source", () => {
  const table = (n: number) =>
    Object.fromEntries(
      JITTERS.map((j) => [j, [0, 0.5, ALMOST_ONE].map((r) => backoffDelay(policy(j), n, pinned(r)))]),
    );

  test("n=0: base = firstMs", () => {
    expect(table(0)).toEqual({
      none: [1000, 1000, 1000],
      full: [0, 500, 1000],
      equal: [500, 750, 1000],
      decorrelated: [1000, 2000, 3000],
    });
  });

  test("n=3: base = firstMs·factor³", () => {
    expect(table(3)).toEqual({
      none: [8000, 8000, 8000],
      full: [0, 4000, 8000],
      equal: [4000, 6000, 8000],
      decorrelated: [1000, 12500, 24000],
    });
  });

  test("n=5: base capped at maxMs", () => {
    expect(table(5)).toEqual({
      none: [30000, 30000, 30000],
      full: [0, 15000, 30000],
      equal: [15000, 22500, 30000],
      decorrelated: [1000, 15500, 30000],
    });
  });

  test("growth without jitter, then the cap", () => {
    const delays = Array.from({ length: 8 }, (_, n) => backoffDelay(policy("none"), n, pinned(0.3)));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  test("fractional factor and rounding to whole ms (Math.round)", () => {
    const p = policy("none", 1000, 10000, 1.5);
    expect(Array.from({ length: 5 }, (_, n) => backoffDelay(p, n, pinned(0)))).toEqual([1000, 1500, 2250, 3375, 5063]);
    expect(backoffDelay(policy("full", 3, 3, 1), 0, pinned(0.5))).toBe(2); // 1.5 rounds up
  });

  test("factor 1 stays at firstMs; maxMs == firstMs pins everything", () => {
    expect(Array.from({ length: 4 }, (_, n) => backoffDelay(policy("none", 700, 5000, 1), n * 10, pinned(0)))).toEqual([
      700, 700, 700, 700,
    ]);
    expect(JITTERS.map((j) => backoffDelay(policy(j, 500, 500, 3), 7, pinned(ALMOST_ONE)))).toEqual([500, 500, 500, 500]);
  });
});

describe("backoffDelay edge cases", () => {
  test("huge n never yields NaN or Infinity", () => {
    const ns = [1024, 1e6, Number.MAX_SAFE_INTEGER, Number.POSITIVE_INFINITY];
    const results = Object.fromEntries(
      JITTERS.map((j) => [j, ns.map((n) => backoffDelay(policy(j, 1000, 30000, 10), n, pinned(0.5)))]),
    );
    expect(results).toEqual({
      none: [30000, 30000, 30000, 30000],
      full: [15000, 15000, 15000, 15000],
      equal: [22500, 22500, 22500, 22500],
      decorrelated: [15500, 15500, 15500, 15500],
    });
  });

  test("factor 1 with infinite n is firstMs, not NaN", () => {
    expect(backoffDelay(policy("none", 250, 1000, 1), Number.POSITIVE_INFINITY, pinned(0))).toBe(250);
  });

  test("NaN or negative failure counts behave like 0", () => {
    expect([Number.NaN, -1, -100].map((n) => backoffDelay(policy("none"), n, pinned(0)))).toEqual([1000, 1000, 1000]);
  });

  test("a misbehaving random source is clamped to [0, 1]", () => {
    const p = policy("full", 1000, 30000, 2);
    expect([1, 7, -3, Number.NaN, Number.POSITIVE_INFINITY].map((r) => backoffDelay(p, 0, pinned(r)))).toEqual([
      1000, 1000, 0, 0, 0,
    ]);
  });

  test("random is consulted once per call", () => {
    let calls = 0;
    const counting = () => {
      calls += 1;
      return 0.25;
    };
    for (const j of JITTERS) backoffDelay(policy(j), 2, counting);
    expect(calls).toBe(JITTERS.length);
  });
});

describe("remainingDelay (a wait resumed after a restart of the agent)", () => {
  test("what is left of the wait", () => {
    expect(remainingDelay(10_000, 4_000, 60_000)).toBe(6_000);
  });
  test("a wait already over is 0, never negative", () => {
    expect(remainingDelay(10_000, 10_000, 60_000)).toBe(0);
    expect(remainingDelay(10_000, 99_000, 60_000)).toBe(0);
  });
  test("a clock stepped back while the agent was down waits no longer than the policy's longest delay", () => {
    expect(remainingDelay(10_000_000, 1_000, 60_000)).toBe(60_000);
  });
  test("a stored time that is not a finite number resumes at once", () => {
    expect(remainingDelay(Number.NaN, 1_000, 60_000)).toBe(0);
    expect(remainingDelay(Number.POSITIVE_INFINITY, 1_000, 60_000)).toBe(0);
  });
});
