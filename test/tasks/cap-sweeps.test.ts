import { describe, expect, test } from "bun:test";
import { createCapSweeps } from "../../src/tasks/cap-sweeps.ts";

describe("cap sweeps", () => {
  test("due before the first sweep: the count is unknown", () => {
    expect(createCapSweeps(10).due(0)).toBe(true);
  });

  test("a store below its cap is not swept until enough tasks have finished to pass it", () => {
    const s = createCapSweeps(10, 0);
    s.swept(7, 0);
    expect(s.due(1)).toBe(false);
    s.finished(3); // 10: at the cap, not beyond it
    expect(s.due(2)).toBe(false);
    s.finished(1);
    expect(s.due(3)).toBe(true);
    s.swept(10, 3); // the sweep deleted the one beyond the cap
    expect(s.due(4)).toBe(false);
  });

  test("the count after a sweep replaces the bound, also when deletes made it smaller", () => {
    const s = createCapSweeps(10, 0);
    s.swept(10, 0);
    s.finished(5);
    expect(s.due(1)).toBe(true);
    s.swept(4, 1); // tasks were deleted or restarted meanwhile
    s.finished(6);
    expect(s.due(2)).toBe(false);
  });

  test("at the cap, the next sweep waits in proportion to the tasks the last one left stored", () => {
    const s = createCapSweeps(50_000, 2);
    s.swept(50_000, 1_000); // 50 000 tasks x 2 µs: not before 1 100 ms
    s.finished(1);
    expect(s.due(1_099)).toBe(false);
    expect(s.due(1_100)).toBe(true);
  });

  test("the default wait keeps a cap of 10 000 within one 100 ms tick", () => {
    const s = createCapSweeps(10_000);
    s.swept(10_000, 0);
    s.finished(1);
    expect(s.due(99)).toBe(true);
  });
});
