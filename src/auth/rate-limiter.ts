/**
 * Token buckets keyed by principal name or remote address.
 *
 * A bucket holds up to `burst` tokens and refills at `ratePerSec`; a request
 * takes one token or is refused with the time until the next one. Memory is
 * bounded: at `maxKeys` buckets, full ones (indistinguishable from absent
 * ones) are dropped first, then the least recently created, down to 90 % of
 * `maxKeys` (so a flood of new keys costs one scan per tenth of the map, not
 * one per key). A wait is at most a day, whatever the rate.
 */

/** The longest wait `take` answers (a rate so low that the next token is further away is answered this). */
export const MAX_WAIT_MS = 86_400_000;

export interface RateLimiterOptions {
  /** Milliseconds clock (injectable for tests). */
  clock?: () => number;
  /** Most buckets kept at once (default 10 000). */
  maxKeys?: number;
}

export interface RateLimiter {
  /**
   * Take one token from the bucket `key` (created full). Returns 0 when
   * allowed, otherwise how many ms until a token is available.
   */
  take(key: string, ratePerSec: number, burst: number): number;
  /** Number of buckets currently kept. */
  readonly size: number;
}

interface Bucket {
  tokens: number;
  at: number;
  ratePerSec: number;
  burst: number;
}

/** Create a rate limiter; nothing runs in the background. */
export function createRateLimiter(opts: RateLimiterOptions = {}): RateLimiter {
  const clock = opts.clock ?? Date.now;
  const maxKeys = opts.maxKeys ?? 10_000;
  const buckets = new Map<string, Bucket>();

  const refill = (b: Bucket, now: number) => {
    if (now > b.at) b.tokens = Math.min(b.burst, b.tokens + ((now - b.at) * b.ratePerSec) / 1000);
    b.at = Math.max(b.at, now);
  };

  const makeRoom = (now: number) => {
    for (const [key, b] of buckets) {
      refill(b, now);
      if (b.tokens >= b.burst) buckets.delete(key);
    }
    const target = maxKeys - Math.max(1, Math.floor(maxKeys / 10));
    for (const key of buckets.keys()) {
      if (buckets.size <= target) break;
      buckets.delete(key);
    }
  };

  return {
    take(key, ratePerSec, burst) {
      const now = clock();
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= maxKeys) makeRoom(now);
        b = { tokens: burst, at: now, ratePerSec, burst };
        buckets.set(key, b);
      }
      b.ratePerSec = ratePerSec;
      b.burst = burst;
      refill(b, now);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.min(MAX_WAIT_MS, Math.max(1, Math.ceil(((1 - b.tokens) * 1000) / ratePerSec)));
    },
    get size() {
      return buckets.size;
    },
  };
}
