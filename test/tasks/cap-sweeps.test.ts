import { describe, expect, test } from "bun:test";
import { createCapSweeps } from "../../src/tasks/cap-sweeps.ts";

describe("cap sweeps", () => {
  test("due before the first sweep: the count is unknown", () => {
    expect(createCapSweeps(10).due(0)).toBe(true);
  });

  test("a store below its cap is not swept until enough tasks have finished to pass it", () => {
    const s = createCapSweeps(10);
    s.swept(7, 0, 0);
    expect(s.due(1)).toBe(false);
    s.finished(3); // 10: at the cap, not beyond it
    expect(s.due(2)).toBe(false);
    s.finished(1);
    expect(s.due(3)).toBe(true);
    s.swept(10, 0, 3); // the sweep deleted the one beyond the cap
    expect(s.due(4)).toBe(false);
  });

  test("the count after a sweep replaces the bound, also when deletes made it smaller", () => {
    const s = createCapSweeps(10);
    s.swept(10, 0, 0);
    s.finished(5);
    expect(s.due(1)).toBe(true);
    s.swept(4, 0, 1); // tasks were deleted or restarted meanwhile
    s.finished(6);
    expect(s.due(2)).toBe(false);
  });

  test("at the cap, the next sweep waits spacing times the last one's duration", () => {
    const s = createCapSweeps(10, 20);
    s.swept(10, 5, 100); // took 5 ms, ended at 100: not before 200
    s.finished(1);
    expect(s.due(199)).toBe(false);
    expect(s.due(200)).toBe(true);
  });

  test("a fast sweep does not hold the next one back", () => {
    const s = createCapSweeps(0);
    s.swept(0, 0, 50);
    s.finished(1);
    expect(s.due(50)).toBe(true);
  });
});
