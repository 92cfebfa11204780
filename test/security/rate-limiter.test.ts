import { expect, test } from "bun:test";
import { createRateLimiter, MAX_WAIT_MS } from "../../src/auth/rate-limiter.ts";

test("a bucket allows its burst, then refuses with the time to the next token, then refills", () => {
  let now = 1_000;
  const rl = createRateLimiter({ clock: () => now });
  const takes = Array.from({ length: 5 }, () => rl.take("a", 2, 4));
  expect(takes).toEqual([0, 0, 0, 0, 500]);
  now += 250;
  expect(rl.take("a", 2, 4)).toBe(250);
  now += 250;
  expect(rl.take("a", 2, 4)).toBe(0);
  expect(rl.take("a", 2, 4)).toBe(500);
  now += 60_000;
  expect(Array.from({ length: 5 }, () => rl.take("a", 2, 4))).toEqual([0, 0, 0, 0, 500]);
});

test("buckets are independent", () => {
  const rl = createRateLimiter({ clock: () => 0 });
  expect(rl.take("a", 1, 1)).toBe(0);
  expect(rl.take("a", 1, 1)).toBe(1000);
  expect(rl.take("b", 1, 1)).toBe(0);
});

test("memory stays bounded: full buckets go first, then the oldest", () => {
  let now = 0;
  const rl = createRateLimiter({ clock: () => now, maxKeys: 3 });
  rl.take("a", 1, 1);
  rl.take("b", 1, 1);
  rl.take("c", 1, 1);
  now = 10_000; // a, b, c are full again
  rl.take("d", 1, 1);
  expect(rl.size).toBe(1);
  rl.take("e", 1, 1);
  rl.take("f", 1, 1);
  rl.take("g", 1, 1); // d, e, f all empty: the oldest (d) is dropped
  expect(rl.size).toBe(3);
  expect(rl.take("e", 1, 1)).toBe(1000);
  expect(rl.take("d", 1, 1)).toBe(0);
});

test("a full map makes room for a tenth of its keys at once, and a wait is at most a day", () => {
  const rl = createRateLimiter({ clock: () => 0, maxKeys: 100 });
  for (let i = 0; i < 100; i++) rl.take(`k${i}`, 1, 2); // none full again at clock 0
  expect(rl.size).toBe(100);
  rl.take("new", 1, 2);
  expect(rl.size).toBe(91); // the 10 oldest went, then the new key came
  expect([rl.take("k0", 1, 2), rl.take("k0", 1, 2)]).toEqual([0, 0]); // k0 was dropped: it starts full again
  expect(rl.take("k10", 1, 2)).toBe(0);
  expect(rl.take("k10", 1, 2)).toBe(1000); // k10 was kept, drained to 0 now
  const slow = createRateLimiter({ clock: () => 0 });
  slow.take("x", 1e-22, 1);
  expect(slow.take("x", 1e-22, 1)).toBe(MAX_WAIT_MS);
});
