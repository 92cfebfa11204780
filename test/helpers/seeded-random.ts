/**
 * mulberry32: a small, fast seeded PRNG for tests whose cases are generated.
 * The same seed gives the same numbers in [0, 1), so a failure that names its
 * seed names a reproducible case.
 */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
