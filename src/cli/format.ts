/**
 * Human output: aligned tables, durations (`1.5s`, `2m30s`), ages (`5m`),
 * relative times (`3h ago`) and ANSI colour for phases. Colour is decided
 * once (`createStyle`), so every printer just calls `style.*`.
 */
import type { Phase, Task } from "../tasks/model.ts";

/** Format a duration in ms: `250ms`, `1.5s`, `42s`, `2m30s`, `1h5m`, `2d3h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  const neg = ms < 0 ? "-" : "";
  ms = Math.abs(ms);
  if (ms < 1000) return `${neg}${Math.round(ms)}ms`;
  if (ms < 10_000) return `${neg}${(Math.floor(ms / 100) / 10).toString()}s`;
  const s = Math.floor(ms / 1000);
  const pair = (big: number, bigUnit: string, small: number, smallUnit: string) =>
    `${neg}${big}${bigUnit}${small > 0 ? `${small}${smallUnit}` : ""}`;
  if (s < 60) return `${neg}${s}s`;
  if (s < 3600) return pair(Math.floor(s / 60), "m", s % 60, "s");
  if (s < 86_400) return pair(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "m");
  return pair(Math.floor(s / 86_400), "d", Math.floor((s % 86_400) / 3600), "h");
}

/** Coarse age like kubectl: `12s`, `5m`, `3h`, `2d`. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** `5s ago`, `3m ago`, or `just now`. */
export function formatRelative(at: number, now: number): string {
  const d = now - at;
  if (d < 1000) return "just now";
  return `${formatAge(d)} ago`;
}

/** Local ISO-like timestamp plus the relative time: `2024-04-10 12:00:01 (5m ago)`. */
export function formatTime(at: number, now: number): string {
  const d = new Date(at);
  const p = (n: number) => String(n).padStart(2, "0");
  const abs = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return `${abs} (${formatRelative(at, now)})`;
}

/** Quote a word for a shell only when needed, for showing commands. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The command line of a task as a shell would show it. */
export function describeCommand(task: Task): string {
  const mode = task.spec.kind.subprocess.mode;
  if ("command" in mode) return [mode.command.command, ...mode.command.args].map(shellQuote).join(" ");
  const rt = mode.script.runtime;
  const runtime = typeof rt === "string" ? rt : rt.custom.command;
  return [`<${runtime} script>`, ...mode.script.args.map(shellQuote)].join(" ");
}

/** The signal name from a run error like `killed by signal SIGKILL`. */
export function signalOf(error: string | undefined): string | undefined {
  return error ? /\bsignal (SIG[A-Z0-9]+)/.exec(error)?.[1] : undefined;
}

/** What the EXIT column shows: the code, the signal, or `-`. */
export function exitCell(exitCode: number | undefined, error: string | undefined): string {
  return exitCode !== undefined ? String(exitCode) : (signalOf(error) ?? "-");
}

/** ANSI styling that is a no-op when colour is off. */
export interface Style {
  readonly enabled: boolean;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
  /** Colour a phase name by its meaning (green ok, red bad, yellow waiting, cyan running). */
  phase(phase: Phase, text?: string): string;
}

/** Whether to colour: stdout is a terminal, `NO_COLOR` is unset or empty, and `TERM` is not `dumb`. */
export function colourWanted(isTTY: boolean, env: Record<string, string | undefined>): boolean {
  return isTTY && !env.NO_COLOR && env.TERM !== "dumb";
}

/** Build the style for this invocation. */
export function createStyle(enabled: boolean): Style {
  const wrap = (open: number, close: number) => (s: string) => (enabled ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  const red = wrap(31, 39);
  const green = wrap(32, 39);
  const yellow = wrap(33, 39);
  const cyan = wrap(36, 39);
  const dim = wrap(2, 22);
  return {
    enabled,
    dim,
    red,
    green,
    yellow,
    cyan,
    phase(phase, text = phase) {
      switch (phase) {
        case "succeeded":
          return green(text);
        case "failed":
        case "timeout":
        case "exhausted":
          return red(text);
        case "pending":
          return yellow(text);
        case "running":
          return cyan(text);
        case "canceled":
          return dim(text);
      }
    },
  };
}

/**
 * Align rows under a header. `paint(col, text)` may colour a cell after it is
 * padded (so escape codes do not break the alignment). The last column is not padded.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], paint?: (col: number, text: string, row: number) => string): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const render = (cells: readonly string[], row: number) =>
    cells
      .map((c, i) => {
        const padded = i === cells.length - 1 ? c : c.padEnd(widths[i]!);
        return row >= 0 && paint ? paint(i, padded, row) : padded;
      })
      .join("   ")
      .trimEnd();
  return [render(header, -1), ...rows.map(render)].join("\n");
}

/** `key: value` lines with the keys aligned. */
export function formatFields(fields: readonly (readonly [string, string])[]): string {
  const w = Math.max(...fields.map(([k]) => k.length)) + 1;
  return fields.map(([k, v]) => `${`${k}:`.padEnd(w)} ${v}`).join("\n");
}
