/**
 * Human values on the command line: durations (`30s`, `1h30m`, `250ms`),
 * sizes (`256MiB`) and integers. Each parser names the flag in its error.
 */
import { parseDuration } from "../config.ts";
import { usage } from "./cli-error.ts";

/** Parse a duration flag like `30s` into ms. A bare number needs a unit (except `0` where `allowZero`). */
export function durationFlag(flag: string, raw: string, opts: { allowZero?: boolean } = {}): number {
  const bad = (why: string) => usage(`--${flag}: ${why}, got ${JSON.stringify(raw)}`);
  if (/^\d+$/.test(raw)) {
    if (opts.allowZero && Number(raw) === 0) return 0;
    throw bad("needs a unit, e.g. 30s, 500ms, 5m or 1h30m");
  }
  const ms = parseDuration(raw);
  if (ms === undefined) throw bad("must be a duration like 30s, 500ms, 5m or 1h30m");
  if (ms === 0 && !opts.allowZero) throw bad("must be longer than zero");
  return ms;
}

const BYTE_UNITS: Record<string, number> = {
  "": 1, b: 1,
  k: 1024, kb: 1000, kib: 1024,
  m: 1 << 20, mb: 1e6, mib: 1 << 20,
  g: 1 << 30, gb: 1e9, gib: 1 << 30,
  t: 2 ** 40, tb: 1e12, tib: 2 ** 40,
};

/** Parse a size flag like `256MiB`, `1G` or `1048576` into bytes. */
export function bytesFlag(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(raw);
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw usage(`--${flag}: must be a size like 256MiB, 1G or 1048576, got ${JSON.stringify(raw)}`);
  const n = Math.round(Number(m[1]) * unit);
  if (n < 1) throw usage(`--${flag}: must be at least 1 byte, got ${JSON.stringify(raw)}`);
  return n;
}

/** Parse an integer flag within `[min, max]`. */
export function intFlag(flag: string, raw: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `${min}..${max}`;
  if (!/^-?\d+$/.test(raw) || Number(raw) < min) throw usage(`--${flag}: must be a whole number ${range}, got ${JSON.stringify(raw)}`);
  if (Number(raw) > max) {
    const why = max === Number.MAX_SAFE_INTEGER ? `too large (at most ${max})` : `must be a whole number ${range}`;
    throw usage(`--${flag}: ${why}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

/** Parse a finite number flag ≥ `min`. */
export function numberFlag(flag: string, raw: string, min: number): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || n < min) throw usage(`--${flag}: must be a number ≥ ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

/** Split `key=value` (the key must be non-empty). */
export function keyValueFlag(flag: string, raw: string): [string, string] {
  const eq = raw.indexOf("=");
  if (eq <= 0) throw usage(`--${flag}: must be KEY=VALUE, got ${JSON.stringify(raw)}`);
  return [raw.slice(0, eq), raw.slice(eq + 1)];
}
