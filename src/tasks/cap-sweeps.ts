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
 * cap is never counted on a tick. At the cap, the next sweep waits
 * `usPerTask` µs for every terminal task the last one left stored (a count
 * costs 0.035–0.1 µs per task, so ≈ 2–5 % of the thread goes to counting
 * under load with the default); the cap may be exceeded for that long
 * (20 ms at 10 000 tasks, 2 s at a million). The wait is set from the count,
 * not from the sweep's duration: deleting is work the cap needs anyway, and a
 * wait that grew with it made each sweep delete more, and wait longer again.
 */

/** How the agent decides, on each tick, whether to sweep for the cap. */
export interface CapSweeps {
  /** `n` tasks became terminal since the last call. */
  finished(n: number): void;
  /** Whether a sweep for the cap is due at `now` (ms, `performance.now()`). */
  due(now: number): boolean;
  /** A sweep ended at `now` (ms), leaving `terminal` terminal tasks stored. */
  swept(terminal: number, now: number): void;
}

/** Default wait after a sweep, per terminal task it left stored: 2 µs. */
export const WAIT_US_PER_TASK = 2;

/** A schedule for the cap `keep` (terminal tasks kept). Before the first sweep the count is unknown: due. */
export function createCapSweeps(keep: number, usPerTask = WAIT_US_PER_TASK): CapSweeps {
  let atMost = Number.POSITIVE_INFINITY;
  let notBefore = Number.NEGATIVE_INFINITY;
  return {
    finished(n) {
      atMost += n;
    },
    due(now) {
      return atMost > keep && now >= notBefore;
    },
    swept(terminal, now) {
      atMost = terminal;
      notBefore = now + (terminal * usPerTask) / 1000;
    },
  };
}
