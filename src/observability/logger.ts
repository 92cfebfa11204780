/**
 * Structured agent logs: one JSON object per line on stderr (or `key=value`
 * text with `--log-format text`). Tokens and other secrets are never passed
 * to the logger.
 */
import type { LogFormat, LogLevel } from "../config.ts";

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Structured fields of one log line; `undefined` values are left out. */
export type LogFields = Record<string, unknown>;

/** The agent's logger. Implementations never throw. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  enabled(level: LogLevel): boolean;
}

/** JSON-safe value: errors become their stack (or message), bigints strings; cycles are cut. */
function plain(v: unknown): unknown {
  if (v instanceof Error) return v.stack ?? `${v.name}: ${v.message}`;
  if (typeof v === "bigint") return v.toString();
  return v;
}

function stringify(v: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return JSON.stringify(v, (_k, x: unknown) => {
      const p = plain(x);
      if (typeof p === "object" && p !== null) {
        if (seen.has(p)) return "[circular]";
        seen.add(p);
      }
      return p;
    });
  } catch {
    return JSON.stringify(String(v));
  }
}

function textValue(v: unknown): string {
  const p = plain(v);
  const s = typeof p === "string" ? p : stringify(p);
  return /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/** Create a logger writing lines to `write` (stderr by default). */
export function createLogger(opts: {
  level: LogLevel;
  format: LogFormat;
  write?: (line: string) => void;
  clock?: () => number;
}): Logger {
  const min = LEVELS[opts.level];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const clock = opts.clock ?? Date.now;
  function log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (LEVELS[level] < min) return;
    const ts = new Date(clock()).toISOString();
    if (opts.format === "json") {
      write(`${stringify({ ts, level, msg, ...fields })}\n`);
    } else {
      let line = `${ts} ${level.toUpperCase().padEnd(5)} ${msg}`;
      if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${textValue(v)}`;
      write(`${line}\n`);
    }
  }
  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    enabled: (level) => LEVELS[level] >= min,
  };
}

/** A logger that drops everything (tests, embedded use). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  enabled: () => false,
};
