/**
 * Delay before a retry — CONTRACT §6 "Backoff".
 *
 * Pure and deterministic given `random`, so the supervisor can inject a seeded
 * source in tests and `Math.random` in production.
 */
import type { Backoff } from "./model.ts";

/**
 * Milliseconds to wait before the next attempt after `failures` consecutive
 * failures (0-based: pass 0 before the first retry). The caller resets
 * `failures` to 0 after a success.
 *
 * - `base = min(firstMs · factor^n, maxMs)`; an overflowing power (Infinity) yields `maxMs`.
 * - `none`: `base`
 * - `full`: uniform in `[0, base]`
 * - `equal`: `base/2 + uniform [0, base/2]`
 * - `decorrelated`: uniform in `[min(firstMs, maxMs), min(3·base, maxMs)]`
 *
 * `random()` must return a number in `[0, 1)` (like `Math.random`); a value
 * outside is clamped, a non-finite one counts as 0. The result is rounded to
 * the nearest integer ms with `Math.round`, so it lies in
 * `[round(low), round(high)]` of the mode's interval and is never NaN,
 * negative or infinite for a valid policy.
 */
export function backoffDelay(policy: Backoff, failures: number, random: () => number): number {
  const { firstMs, maxMs, factor } = policy;
  const n = Number.isNaN(failures) || failures < 0 ? 0 : Math.floor(failures);
  // factor 1 is constant growth; 1^Infinity would be NaN in JS.
  const grown = factor === 1 ? firstMs : firstMs * factor ** n;
  const base = Number.isFinite(grown) ? Math.min(grown, maxMs) : maxMs;
  const r = unit(random());

  switch (policy.jitter) {
    case "none":
      return Math.round(base);
    case "full":
      return Math.round(r * base);
    case "equal":
      return Math.round(base / 2 + r * (base / 2));
    case "decorrelated": {
      const low = Math.min(firstMs, maxMs);
      const high = Math.max(low, Math.min(3 * base, maxMs));
      return Math.round(low + r * (high - low));
    }
  }
}

function unit(r: number): number {
  if (!Number.isFinite(r)) return 0;
  return Math.min(Math.max(r, 0), 1);
}

/**
 * What is left of a retry delay that was due at `retryAt` (epoch ms) when
 * the agent resumes at `now`: never negative, and never more than
 * `maxDelay`, the longest delay the task's policy can ask for — a clock
 * stepped back while the agent was down must not stretch the wait.
 */
export function remainingDelay(retryAt: number, now: number, maxDelay: number): number {
  if (!Number.isFinite(retryAt)) return 0;
  return Math.max(0, Math.min(retryAt - now, maxDelay));
}
