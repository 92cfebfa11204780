/**
 * When the agent enforces `--max-tasks` between its periodic sweeps.
 *
 * A sweep counts the terminal tasks in the store, which costs in proportion
 * to how many are stored (SQLite: ≈ 0.35 ms for 10 000, ≈ 10 ms for
 * 100 000). Sweeping on every log-hub tick in which a task finished cost the
 * main thread ≈ 10 % with 100 000 tasks stored under a cap of 200 000, for
 * sweeps that found nothing to delete. This schedule keeps an upper bound of
 * the terminal tasks stored — exact after each sweep, plus every task that has
 * finished since (a delete or a restart only lowers the real count) — and
 * asks for a sweep only when that bound is above the cap: a store below its
 * cap is never counted on a tick. And at the cap, a sweep comes no sooner
 * than `spacing` times the previous sweep's duration after it, so that
 * enforcing a large cap under load takes at most ≈ 1/`spacing` of the thread
 * (the cap may then be exceeded for that long).
 */

/** How the agent decides, on each tick, whether to sweep for the cap. */
export interface CapSweeps {
  /** `n` tasks became terminal since the last call. */
  finished(n: number): void;
  /** Whether a sweep for the cap is due at `now` (ms, `performance.now()`). */
  due(now: number): boolean;
  /** A sweep ended at `now` after `tookMs`, leaving `terminal` terminal tasks stored. */
  swept(terminal: number, tookMs: number, now: number): void;
}

/** Default ratio between the time after a sweep and its duration: ≤ ≈ 5 % of the thread. */
export const SWEEP_SPACING = 20;

/** A schedule for the cap `keep` (terminal tasks kept). Before the first sweep the count is unknown: due. */
export function createCapSweeps(keep: number, spacing = SWEEP_SPACING): CapSweeps {
  let atMost = Number.POSITIVE_INFINITY;
  let notBefore = Number.NEGATIVE_INFINITY;
  return {
    finished(n) {
      atMost += n;
    },
    due(now) {
      return atMost > keep && now >= notBefore;
    },
    swept(terminal, tookMs, now) {
      atMost = terminal;
      notBefore = now + spacing * tookMs;
    },
  };
}
