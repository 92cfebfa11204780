/**
 * Structured agent logs: one JSON object per line on stderr (or `key=value`
 * text with `--log-format text`). Tokens and other secrets are never passed
 * to the logger.
 */
import { writeSync } from "node:fs";
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

/** True when `JSON.stringify` renders every field as is (no errors, bigints or nested objects to guard). */
function flat(fields: LogFields | undefined): boolean {
  if (fields === undefined) return true;
  for (const k in fields) {
    const v = fields[k];
    if (typeof v === "object" ? v !== null : typeof v === "bigint") return false;
  }
  return true;
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
  const write = opts.write ?? stderrSink();
  const clock = opts.clock ?? Date.now;
  // Lines come in bursts within one millisecond: format each millisecond once.
  let lastMs = Number.NaN;
  let lastIso = "";
  const isoOf = (ms: number) => {
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = new Date(ms).toISOString();
    }
    return lastIso;
  };
  function log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (LEVELS[level] < min) return;
    const ts = isoOf(clock());
    if (opts.format === "json") {
      if (flat(fields) && !(fields && ("ts" in fields || "level" in fields || "msg" in fields))) {
        // What JSON.stringify({ ts, level, msg, ...fields }) gives, without copying the fields.
        const rest = fields === undefined ? "{}" : JSON.stringify(fields);
        write(`{"ts":"${ts}","level":"${level}","msg":${JSON.stringify(msg)}${rest.length > 2 ? `,${rest.slice(1)}` : "}"}\n`);
      } else {
        write(`${stringify({ ts, level, msg, ...fields })}\n`);
      }
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

/**
 * Writes to file descriptor 2 with `write(2)`, as Node does for files and
 * pipes on Linux, without creating `process.stderr` (its stream machinery is
 * ≈ 1–2 ms of the agent's start-up). Should the descriptor be non-blocking
 * and full (`EAGAIN`), the rest of that text and everything after it goes
 * through `process.stderr`, which queues it; order is kept either way.
 */
export function fd2Writer(
  fd = 2,
  fallback: () => { write(data: string | Uint8Array): unknown } = () => process.stderr,
  write: (fd: number, data: Uint8Array, offset: number) => number = writeSync,
): { write(text: string): void } {
  let stream: { write(data: string | Uint8Array): unknown } | undefined;
  return {
    write(text) {
      if (stream) {
        stream.write(text);
        return;
      }
      const bytes = Buffer.from(text);
      let off = 0;
      try {
        while (off < bytes.length) off += write(fd, bytes, off);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
        stream = fallback();
        stream.write(bytes.subarray(off));
      }
    },
  };
}

/** Flushes of every stderr sink, run once when the process exits. */
const exitFlushes = new Set<() => void>();

/**
 * Lines for stderr, written together once per event-loop turn (or as soon as
 * 64 KiB are pending): a busy agent logs thousands of lines per second, and
 * one write per line cost more than building the lines. Pending lines are
 * written when the process exits, so only a SIGKILL can lose them (at most
 * one turn's worth).
 */
export function stderrSink(out: { write(text: string): unknown } = fd2Writer()): (line: string) => void {
  let pending: string[] = [];
  let bytes = 0;
  let scheduled = false;
  function flush(): void {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.join("");
    pending = [];
    bytes = 0;
    try {
      out.write(text);
    } catch {
      // stderr closed: logging never takes the agent down.
    }
  }
  if (exitFlushes.size === 0) process.on("exit", () => exitFlushes.forEach((f) => f()));
  exitFlushes.add(flush);
  return (line) => {
    pending.push(line);
    bytes += line.length;
    if (bytes >= 65536) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}

/** Write the pending lines of every stderr sink now (before a last line written another way). */
export function flushStderr(): void {
  for (const flush of exitFlushes) flush();
}

/** A logger that drops everything (tests, embedded use). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  enabled: () => false,
};
